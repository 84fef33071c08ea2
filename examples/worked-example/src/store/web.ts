// File: src/store/web.ts — what the store's web process does for GET /products/:sku. It calls
// an RPC of the image service and fires an event of its own API. It never starts a worker.
import { bus, products } from './bus.js';

/** Renders a product page (as text, to keep the example small). */
export async function renderProductPage(sku: string): Promise<string> {
  const product = products.get(sku);
  if (!product) return '404 Not Found';
  const thumbnail = await bus.image.resize({ url: product.image, width: 200, height: 200 });
  await bus.store.pageViewed.fire({ url: `/products/${sku}`, sku });
  return `${product.name}: ${(product.price / 100).toFixed(2)} EUR, thumbnail ${thumbnail}`;
}
