// Server-Sent Events over fetch(): the stream needs the bearer token, which EventSource
// cannot send.

export interface SseHandlers {
  onOpen(): void;
  onEvent(data: string, event: string): void;
  onComment(text: string): void;
  onClose(reason: string): void;
}

export function openSse(url: string, authorization: string, handlers: SseHandlers): AbortController {
  const controller = new AbortController();
  (async () => {
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { Authorization: authorization, Accept: 'text/event-stream' },
        signal: controller.signal,
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (e) {
      if (!controller.signal.aborted) handlers.onClose(`cannot connect: ${(e as Error).message}`);
      return;
    }
    if (!res.ok || !res.body) {
      let message = `HTTP ${res.status}`;
      try {
        const body = await res.json();
        if (body && body.message) message = `${message}: ${body.message}`;
      } catch {
        /* not JSON */
      }
      handlers.onClose(message);
      return;
    }
    handlers.onOpen();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let data: string[] = [];
    let event = 'message';
    const line = (text: string) => {
      if (text === '') {
        if (data.length) handlers.onEvent(data.join('\n'), event);
        data = [];
        event = 'message';
        return;
      }
      if (text.startsWith(':')) {
        handlers.onComment(text.slice(1).trim());
        return;
      }
      const colon = text.indexOf(':');
      const name = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? '' : text.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (name === 'data') data.push(value);
      else if (name === 'event') event = value;
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let at: number;
        while ((at = buffer.search(/\r\n|\r|\n/)) >= 0) {
          const size = buffer[at] === '\r' && buffer[at + 1] === '\n' ? 2 : 1;
          // A lone \r at the end of the chunk may be the first half of \r\n.
          if (buffer[at] === '\r' && at + 1 === buffer.length) break;
          line(buffer.slice(0, at));
          buffer = buffer.slice(at + size);
        }
      }
      handlers.onClose('the server closed the stream');
    } catch (e) {
      if (!controller.signal.aborted) handlers.onClose(`connection lost: ${(e as Error).message}`);
    }
  })();
  return controller;
}
