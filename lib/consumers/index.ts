export {
  Consumer,
  ConsumerClosed,
  UnhandledMessageType,
  type ConsumerLogger,
  type ConsumerOptions,
  type HandlerMap,
  type MessageHandler,
} from './consumer.ts';
export {
  WebSocketConsumer,
  type BackpressureOptions,
  type ReceivedFrame,
  type SendData,
  type WebSocketConsumerOptions,
  type WebSocketScope,
} from './websocket.ts';
export {
  attachConsumers,
  type AttachOptions,
  type ConsumerRouter,
  type Routes,
  type RouterStats,
  type WebSocketConsumerClass,
} from './router.ts';
