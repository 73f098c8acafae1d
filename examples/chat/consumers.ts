/**
 * The chat consumer of the Django seed note, in chanlayer:
 *
 *   class ChatConsumer(AsyncWebsocketConsumer):
 *       async def connect(self):
 *           await self.channel_layer.group_add(self.group_name, self.channel_name)
 *           await self.accept()
 *       async def disconnect(self, close_code):
 *           await self.channel_layer.group_discard(self.group_name, self.channel_name)
 *       async def chat_message(self, event):
 *           await self.send(text_data=json.dumps({"message": event["message"]}))
 *
 * Rooms are groups named `chat_<room>`, so a Django process on the same Redis reaches the room
 * with `group_send("chat_<room>", {"type": "chat.message", "message": …})`.
 */
import { WebSocketConsumer } from '../../lib/index.ts';

/** What travels through the layer: the seed's `{"type": "chat.message", "message": …}`. */
export type ChatEvent = { type: 'chat.message'; message: string };

/** Room names become group names: ASCII letters, digits, `-`, `_`, `.`; under 80 characters. */
export const ROOM_NAME = /^[A-Za-z0-9_.-]{1,80}$/;

export class ChatConsumer extends WebSocketConsumer<ChatEvent> {
  roomName = '';
  groupName = '';

  override async connect(): Promise<void> {
    this.roomName = this.scope.params.room ?? '';
    if (!ROOM_NAME.test(this.roomName)) {
      await this.close(); // before accept(): the handshake is refused with 403
      return;
    }
    this.groupName = `chat_${this.roomName}`;
    // Join room group (left again automatically when the consumer closes).
    await this.groupAdd(this.groupName);
    await this.accept();
  }

  /** A message from the page: `{"message": "…"}`; broadcast it to the room. */
  override async receiveJson(content: unknown): Promise<void> {
    const message = (content as { message?: unknown } | null)?.message;
    if (typeof message !== 'string' || message.length === 0) return;
    await this.groupSend(this.groupName, { type: 'chat.message', message: message.slice(0, 4000) });
  }

  /** Receive message from room group (`type: 'chat.message'`); send it to the WebSocket. */
  async chat_message(event: ChatEvent): Promise<void> {
    await this.send({ text: JSON.stringify({ message: event.message }) });
  }
}
