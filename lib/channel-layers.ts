/**
 * Django-style configuration: `channelLayers.configure({ alias: { BACKEND, CONFIG } })`,
 * `getChannelLayer(alias)` building each layer once, `fromConfig` building one. A pasted Django
 * `CHANNEL_LAYERS` block works as is (Python BACKEND paths, snake_case CONFIG keys).
 */
import { fromDjangoConfig, resolveOptions, type LayerOptions } from './config.ts';
import { ConfigurationError } from './errors.ts';
import { InMemoryChannelLayer } from './layers/in-memory.ts';
import { RedisChannelLayer } from './layers/redis.ts';
import { RedisPubSubChannelLayer } from './layers/redis-pubsub.ts';
import { getSerializer } from './serde/registry.ts';
import type { ChannelLayer } from './types.ts';

export interface LayerConfig {
  BACKEND: string;
  CONFIG?: Record<string, unknown>;
}

type Constructor = new (options: LayerOptions) => ChannelLayer;

const BACKENDS: Record<string, Constructor> = {
  'chanlayer.InMemoryChannelLayer': InMemoryChannelLayer,
  'channels.layers.InMemoryChannelLayer': InMemoryChannelLayer,
  'chanlayer.RedisChannelLayer': RedisChannelLayer,
  'channels_redis.core.RedisChannelLayer': RedisChannelLayer,
  'chanlayer.RedisPubSubChannelLayer': RedisPubSubChannelLayer,
  'channels_redis.pubsub.RedisPubSubChannelLayer': RedisPubSubChannelLayer,
};

export function fromConfig(config: LayerConfig): ChannelLayer {
  if (config === null || typeof config !== 'object') {
    throw new ConfigurationError('a channel layer config must be an object with BACKEND');
  }
  const Layer = BACKENDS[config.BACKEND];
  if (!Layer) {
    throw new ConfigurationError(
      `Unknown BACKEND "${String(config.BACKEND)}" (known: ${Object.keys(BACKENDS).join(', ')})`,
    );
  }
  return new Layer(fromDjangoConfig(config.CONFIG ?? {}));
}

class ChannelLayerManager {
  private configs: Record<string, LayerConfig> | undefined;
  private readonly built = new Map<string, ChannelLayer>();

  /** Replaces the configuration and forgets built layers (without closing them). */
  configure(configs: Record<string, LayerConfig>): void {
    if (configs === null || typeof configs !== 'object') {
      throw new ConfigurationError('configure() needs an object of { alias: { BACKEND, CONFIG } }');
    }
    for (const [alias, config] of Object.entries(configs)) {
      if (!BACKENDS[config?.BACKEND]) {
        throw new ConfigurationError(
          `Unknown BACKEND "${String(config?.BACKEND)}" for alias "${alias}"`,
        );
      }
      // Bad options (a bare string for hosts, an unknown serializerFormat, …) fail here, as
      // configure() promises, not at the first getChannelLayer(). Nothing is built or connected.
      try {
        getSerializer(resolveOptions(fromDjangoConfig(config.CONFIG ?? {})).serializerFormat);
      } catch (err) {
        if (!(err instanceof ConfigurationError)) throw err;
        throw new ConfigurationError(`alias "${alias}": ${err.message}`, { cause: err });
      }
    }
    this.configs = configs;
    this.built.clear();
  }

  get(alias = 'default'): ChannelLayer | undefined {
    const cached = this.built.get(alias);
    if (cached) return cached;
    const config = this.resolve()[alias];
    if (!config) return undefined;
    const layer = fromConfig(config);
    this.built.set(alias, layer);
    return layer;
  }

  /** Explicit configuration, else `CHANNEL_LAYERS` JSON from the environment, else in-memory. */
  private resolve(): Record<string, LayerConfig> {
    if (this.configs) return this.configs;
    const env = process.env.CHANNEL_LAYERS;
    if (env) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(env);
      } catch (err) {
        throw new ConfigurationError(`CHANNEL_LAYERS is not valid JSON: ${(err as Error).message}`);
      }
      this.configure(parsed as Record<string, LayerConfig>);
      return this.configs!;
    }
    return { default: { BACKEND: 'chanlayer.InMemoryChannelLayer' } };
  }
}

export const channelLayers = new ChannelLayerManager();

export function getChannelLayer(alias = 'default'): ChannelLayer | undefined {
  return channelLayers.get(alias);
}
