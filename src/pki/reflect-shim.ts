/**
 * Internal: @peculiar/x509 v2 uses tsyringe, which refuses to load unless a Reflect metadata API
 * (reflect-metadata, core-js/full/reflect, ...) is installed globally. None is a dependency, so this
 * installs the minimal subset tsyringe calls (define/get/getOwn/has/hasOwn metadata and the
 * `metadata` decorator factory), and only when no polyfill is present. Import it before
 * '@peculiar/x509' (x509-provider.ts does).
 */
type Key = string | symbol | undefined;
type Store = Map<Key, Map<unknown, unknown>>;

interface ReflectMetadataApi {
  defineMetadata(metadataKey: unknown, value: unknown, target: object, propertyKey?: string | symbol): void;
  getOwnMetadata(metadataKey: unknown, target: object, propertyKey?: string | symbol): unknown;
  getMetadata(metadataKey: unknown, target: object, propertyKey?: string | symbol): unknown;
  hasOwnMetadata(metadataKey: unknown, target: object, propertyKey?: string | symbol): boolean;
  hasMetadata(metadataKey: unknown, target: object, propertyKey?: string | symbol): boolean;
  metadata(metadataKey: unknown, value: unknown): (target: object, propertyKey?: string | symbol) => void;
}

const R = Reflect as unknown as Partial<ReflectMetadataApi>;

if (typeof R.getMetadata !== 'function') {
  const stores = new WeakMap<object, Store>();
  const own = (target: object, propertyKey: Key, create: boolean): Map<unknown, unknown> | undefined => {
    let store = stores.get(target);
    if (!store) {
      if (!create) return undefined;
      store = new Map();
      stores.set(target, store);
    }
    let entries = store.get(propertyKey);
    if (!entries && create) {
      entries = new Map();
      store.set(propertyKey, entries);
    }
    return entries;
  };
  const api: ReflectMetadataApi = {
    defineMetadata(metadataKey, value, target, propertyKey) {
      own(target, propertyKey, true)!.set(metadataKey, value);
    },
    getOwnMetadata(metadataKey, target, propertyKey) {
      return own(target, propertyKey, false)?.get(metadataKey);
    },
    hasOwnMetadata(metadataKey, target, propertyKey) {
      return own(target, propertyKey, false)?.has(metadataKey) ?? false;
    },
    getMetadata(metadataKey, target, propertyKey) {
      for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
        const entries = own(t, propertyKey, false);
        if (entries?.has(metadataKey)) return entries.get(metadataKey);
      }
      return undefined;
    },
    hasMetadata(metadataKey, target, propertyKey) {
      for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
        if (own(t, propertyKey, false)?.has(metadataKey)) return true;
      }
      return false;
    },
    metadata(metadataKey, value) {
      return (target, propertyKey) => api.defineMetadata(metadataKey, value, target, propertyKey);
    },
  };
  for (const [name, fn] of Object.entries(api)) {
    Object.defineProperty(Reflect, name, { value: fn, writable: true, configurable: true, enumerable: false });
  }
}

export {};
