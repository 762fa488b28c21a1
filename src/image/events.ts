/**
 * Image events on the daemon's bus, published around the image store's verbs that change names or
 * images (tag, untag, remove), so the store itself stays free of them. Like dockerd: tag has the new
 * name, untag and delete name the image ID; every event carries the image's labels where they are known.
 * pull and push are published by the registry client, import by importImage.
 */
import type { EventBus } from '../events/index.js';
import { familiarString, parseReference } from './reference.js';
import type { Image, ImageStore } from './store.js';

export function imageAttributes(img: Image | null | undefined, name: string): Record<string, string> {
  return { ...(img?.config.config?.Labels ?? {}), name };
}

/** The same store; its tag, untag and remove also publish 'image' events to the bus. */
export function publishImageEvents(store: ImageStore, bus: EventBus): ImageStore {
  const overrides: Pick<ImageStore, 'tag' | 'untag' | 'remove'> = {
    tag(id, ref) {
      store.tag(id, ref);
      const img = store.resolve(id);
      bus.publish('image', 'tag', img.id, imageAttributes(img, familiarString(parseReference(ref))));
    },
    untag(ref) {
      const id = store.untag(ref);
      if (id !== null) bus.publish('image', 'untag', id, imageAttributes(store.get(id), id));
      return id;
    },
    async remove(nameOrId, opts, usedBy) {
      const img = store.resolve(nameOrId);
      // rmi's records also list the deleted layers; only images get a 'delete' event.
      const images = new Map(store.list().map((i) => [i.id, i]));
      const items = await store.remove(nameOrId, opts, usedBy);
      for (const item of items) {
        if ('Untagged' in item) bus.publish('image', 'untag', img.id, imageAttributes(img, img.id));
        else if (images.has(item.Deleted)) bus.publish('image', 'delete', item.Deleted, imageAttributes(images.get(item.Deleted), item.Deleted));
      }
      return items;
    },
  };
  // A proxy rather than a copy of the interface: verbs the store gains later pass through unchanged.
  return new Proxy(store, {
    get(target, prop) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof typeof overrides];
      const v: unknown = Reflect.get(target, prop);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
