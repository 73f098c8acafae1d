export type { ChannelLayer, Message, ReceiveOptions } from './types.ts';
export type {
  LayerOptions,
  HostEntry,
  AddressHost,
  SentinelHost,
  ClusterHost,
  CapacityRules,
  Logger,
  LivenessOption,
} from './config.ts';
export type { HealthReport, ReaderState, ShardHealth } from './redis/health.ts';
export {
  ChannelFull,
  MessageTooLarge,
  InvalidChannelName,
  InvalidGroupName,
  LayerClosed,
  ConfigurationError,
  UnreadablePayload,
  NotAChannelQueue,
  WrongClientPrefix,
  ConnectionError,
  AuthenticationError,
  RedisTooOld,
  NotAGroup,
} from './errors.ts';
export type {
  CounterName,
  LayerEvents,
  LayerObserver,
  LayerStats,
  MasterChange,
} from './layers/base.ts';
export { InMemoryChannelLayer, type InMemoryOptions } from './layers/in-memory.ts';
export { RedisChannelLayer, type RedisLayerOptions } from './layers/redis.ts';
export { RedisPubSubChannelLayer, type RedisPubSubOptions } from './layers/redis-pubsub.ts';
export { fromConfig, channelLayers, getChannelLayer, type LayerConfig } from './channel-layers.ts';
export { registerSerializer } from './serde/registry.ts';
export type { Serializer, Crypter } from './serde/types.ts';
export * from './consumers/index.ts';
