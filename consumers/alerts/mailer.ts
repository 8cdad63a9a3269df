/**
 * The SMTP transport for alert digests, from `config.alerts.smtpUrl` (credentials may sit in the
 * URL; it is never logged — use `redactUrl` to print it). One pooled-free transport per process;
 * callers retry whole sends.
 */
import nodemailer, { type Transporter } from 'nodemailer';
import type { Config } from '../../lib/config.ts';

export interface Mail {
  to: string[];
  subject: string;
  text: string;
  html: string;
  /** Message-ID to send with ("<…@…>"); a resend of the same content carries the same one. Default: nodemailer's random id. */
  messageId?: string;
}

export interface Mailer {
  /** Resolves once the SMTP server accepted the message; rejects otherwise. */
  send(mail: Mail): Promise<{ messageId: string }>;
  close(): void;
}

export interface MailerOptions {
  connectionTimeoutMs?: number;
  socketTimeoutMs?: number;
}

export function createMailer(alerts: Pick<Config['alerts'], 'smtpUrl' | 'from'>, opts: MailerOptions = {}): Mailer {
  const url = new URL(alerts.smtpUrl);
  const transport: Transporter = nodemailer.createTransport({
    host: url.hostname,
    port: Number(url.port) || (url.protocol === 'smtps:' ? 465 : 587),
    secure: url.protocol === 'smtps:',
    ...(url.username ? { auth: { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } } : {}),
    connectionTimeout: opts.connectionTimeoutMs ?? 10_000,
    greetingTimeout: opts.connectionTimeoutMs ?? 10_000,
    socketTimeout: opts.socketTimeoutMs ?? 30_000,
  });
  return {
    async send(mail) {
      const info = (await transport.sendMail({ from: alerts.from, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html, ...(mail.messageId ? { messageId: mail.messageId } : {}) })) as { messageId: string };
      return { messageId: info.messageId };
    },
    close() {
      transport.close();
    },
  };
}
