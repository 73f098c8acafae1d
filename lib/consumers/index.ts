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
  attachConsumers,
  type AttachOptions,
  type BackpressureOptions,
  type ConsumerRouter,
  type ReceivedFrame,
  type Routes,
  type RouterStats,
  type SendData,
  type WebSocketConsumerClass,
  type WebSocketConsumerOptions,
  type WebSocketScope,
} from './websocket.ts';
