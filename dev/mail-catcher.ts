/**
 * Reads the local mail catcher's messages (demo and tests): maildev's REST API (`GET /api/email`), or
 * Mailpit's (`GET /api/v1/messages`, then each message) when that is what answers at the base URL
 * (docker compose runs Mailpit).
 */
export interface MailMessage {
  id: string;
  subject: string;
  text: string;
  html: string;
  to: string[];
  /** When the server received it (epoch ms). */
  date: number;
  /** The Message-ID header, without angle brackets ('' when the server did not say). */
  messageId: string;
}

interface MaildevMail {
  id: string;
  time?: string;
  date?: string;
  subject: string;
  messageId?: string;
  headers?: Record<string, string | undefined>;
  text?: string;
  html?: string;
  to?: Array<{ address: string }>;
}

interface MailpitSummary {
  ID: string;
  Subject: string;
  MessageID?: string;
  Created?: string;
  To?: Array<{ Address: string }>;
}

export interface Mailbox {
  list(): Promise<MailMessage[]>;
  /** Mails sent to `address`. */
  to(address: string): Promise<MailMessage[]>;
}

export function mailbox(baseUrl: string): Mailbox {
  let kind: 'maildev' | 'mailpit' | undefined;

  async function listMaildev(): Promise<MailMessage[] | undefined> {
    const res = await fetch(`${baseUrl}/api/email`);
    if (!res.ok) return undefined;
    const mails = (await res.json()) as MaildevMail[];
    return mails.map((m) => ({ id: m.id, subject: m.subject, text: m.text ?? '', html: m.html ?? '', to: (m.to ?? []).map((t) => t.address), date: Date.parse(m.time ?? m.date ?? ''), messageId: (m.messageId ?? m.headers?.['message-id'] ?? '').replace(/^<|>$/g, '') }));
  }

  async function listMailpit(): Promise<MailMessage[] | undefined> {
    const res = await fetch(`${baseUrl}/api/v1/messages?limit=1000`);
    if (!res.ok) return undefined;
    const { messages } = (await res.json()) as { messages: MailpitSummary[] };
    return Promise.all(
      messages.map(async (m) => {
        const full = (await (await fetch(`${baseUrl}/api/v1/message/${m.ID}`)).json()) as { Text?: string; HTML?: string };
        return { id: m.ID, subject: m.Subject, text: full.Text ?? '', html: full.HTML ?? '', to: (m.To ?? []).map((t) => t.Address), date: Date.parse(m.Created ?? ''), messageId: (m.MessageID ?? '').replace(/^<|>$/g, '') };
      }),
    );
  }

  async function list(): Promise<MailMessage[]> {
    if (kind !== 'mailpit') {
      const mails = await listMaildev().catch(() => undefined);
      if (mails) {
        kind = 'maildev';
        return mails;
      }
    }
    const mails = await listMailpit().catch(() => undefined);
    if (mails) {
      kind = 'mailpit';
      return mails;
    }
    throw new Error(`no maildev or Mailpit API answers at ${baseUrl}`);
  }

  return {
    list,
    async to(address) {
      return (await list()).filter((m) => m.to.includes(address));
    },
  };
}
