// File: src/dashboard/bus.ts — the dashboard owns no API: its worker only listens.
import { createBus, type EventContext } from '@lightbus/core';
import { priceMonitorApi } from '../price-monitor/api.js';
import { storeApi } from '../store/api.js';

export const bus = createBus({ apis: [storeApi, priceMonitorApi], serviceName: 'dashboard' });

/** The dashboard's database. */
export const stats = { pageViews: new Map<string, number>(), competitorPrices: new Map<string, number>() };

// Events arrive at least once. Counting is not idempotent, so remember what was counted.
const counted = new Set<string>();

/** Counts a page view once, even if the event is delivered again. */
export function countPageView({ sku }: { sku: string }, event: EventContext): void {
  if (counted.has(event.id)) return;
  counted.add(event.id);
  stats.pageViews.set(sku, (stats.pageViews.get(sku) ?? 0) + 1);
}

// A new listener group starts with the events fired after it was created. A dashboard wants the
// whole story, so its groups start from the oldest event the broker still holds.
bus.onStart((b) => {
  b.store.pageViewed.listen(countPageView, { listenerName: 'count_page_views', since: 'all' });
  b.price_monitor.competitorPriceChanged.listen(
    ({ sku, price }) => {
      stats.competitorPrices.set(sku, price);
    },
    { listenerName: 'record_competitor_prices', since: 'all' },
  );
});
