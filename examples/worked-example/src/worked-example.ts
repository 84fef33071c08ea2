// The whole worked example in one process: the workers of the four services, then three page
// views from the store's web process. With no broker configured everything runs on the in-memory
// transports; point LIGHTBUS_CONFIG at a Redis config to run the same code over Redis.
import { bus as dashboardBus, stats } from './dashboard/bus.js';
import { bus as imageBus } from './image-service/bus.js';
import { bus as priceMonitorBus } from './price-monitor/bus.js';
import { bus as storeBus, output as storeOutput, products } from './store/bus.js';
import { renderProductPage } from './store/web.js';

/** What the example ends with. */
export interface WorkedExampleResult {
  /** What the web process rendered. */
  pages: string[];
  /** The dashboard's page view counts. */
  pageViews: Record<string, number>;
  /** The store's prices after matching the competitor. */
  prices: Record<string, number>;
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Runs the example and returns what each service ended with. */
export async function runWorkedExample(log: (line: string) => void = console.log): Promise<WorkedExampleResult> {
  storeOutput.log = log;
  const workers = [imageBus, storeBus, dashboardBus, priceMonitorBus];
  // Four `lightbus run` workers; start() returns once each one's listeners are subscribed. The
  // price monitor starts last: its task runs at once and fires two events, which the store and
  // the dashboard (already listening) hear.
  for (const worker of workers) await worker.start();
  try {
    log(`Workers running: ${workers.map((w) => w.serviceName).join(', ')}`);
    await until(() => stats.competitorPrices.size === 2, 'the dashboard to hear both competitor prices');
    await until(() => products.get('tea-pot')!.price === 1898 && products.get('mug')!.price === 649, 'the store to match both prices');

    const pages: string[] = [];
    for (const sku of ['tea-pot', 'mug', 'tea-pot']) {
      const page = await renderProductPage(sku);
      log(`GET /products/${sku} -> ${page}`);
      pages.push(page);
    }
    await until(() => [...stats.pageViews.values()].reduce((a, b) => a + b, 0) === 3, 'the dashboard to count three page views');
    const pageViews = Object.fromEntries(stats.pageViews);
    log(`dashboard: page views ${JSON.stringify(pageViews)}, competitor prices ${JSON.stringify(Object.fromEntries(stats.competitorPrices))}`);
    return { pages, pageViews, prices: Object.fromEntries([...products].map(([sku, p]) => [sku, p.price])) };
  } finally {
    for (const worker of workers.reverse()) await worker.close();
  }
}
