// File: src/price-monitor/bus.ts — checks competitors' prices every minute and fires an event
// for each price that changed. It owns the price_monitor API, so it may fire its events.
import { createBus } from '@lightbus/core';
import { priceMonitorApi } from './api.js';

export const bus = createBus({ apis: [priceMonitorApi], serviceName: 'price_monitor' });
bus.registerApi(priceMonitorApi);

/** Stands in for scraping a competitor's site: SKU → price in cents. */
export const competitorPrices = new Map<string, number>([
  ['tea-pot', 1899],
  ['mug', 650],
]);

const lastSeen = new Map<string, number>();

/** Fires price_monitor.competitor_price_changed for every price that differs from last time. */
export async function checkCompetitorPrices(): Promise<void> {
  for (const [sku, price] of competitorPrices) {
    if (lastSeen.get(sku) === price) continue;
    await bus.price_monitor.competitorPriceChanged.fire({ sku, price, checkedAt: new Date() });
    lastSeen.set(sku, price);
  }
}

// Scheduled tasks run in the worker (`lightbus run`), never in web processes.
bus.every(60, checkCompetitorPrices, { runImmediately: true });
