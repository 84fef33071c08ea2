// File: src/store/bus.ts — the store's bus. Its web process imports it to call RPCs and fire
// events; its worker (`lightbus run`) also keeps prices in line with competitors.
import { createBus, type EventParams } from '@lightbus/core';
import { imageApi } from '../image-service/api.js';
import { priceMonitorApi } from '../price-monitor/api.js';
import { storeApi } from './api.js';

export const bus = createBus({ apis: [storeApi, imageApi, priceMonitorApi], serviceName: 'store' });
bus.registerApi(storeApi);

/** The store's database: SKU → product. */
export const products = new Map([
  ['tea-pot', { name: 'Tea pot', price: 2100, image: 'https://img.example.com/tea-pot.jpg' }],
  ['mug', { name: 'Mug', price: 700, image: 'https://img.example.com/mug.jpg' }],
]);

/** Where the store reports what it did (the example's test captures it). */
export const output = { log: (line: string) => console.log(line) };

/** Undercuts a competitor by one cent. Setting a price is idempotent: a redelivery is harmless. */
export function matchCompetitorPrice({ sku, price }: EventParams<typeof priceMonitorApi, 'competitorPriceChanged'>): void {
  const product = products.get(sku);
  if (!product || product.price < price) return;
  const old = product.price;
  product.price = price - 1;
  output.log(`store: ${sku} now costs ${product.price} (was ${old}; a competitor asks ${price})`);
}

// Listeners run in the worker. On its first start the group replays the prices already
// announced ('all'); after that it resumes where it stopped.
bus.onStart((b) => {
  b.price_monitor.competitorPriceChanged.listen(matchCompetitorPrice, { listenerName: 'match_prices', since: 'all' });
});
