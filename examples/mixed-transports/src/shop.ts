// The shop (another process): calls payments.charge over NATS and hears payments.charged over
// the event broker.
import { createBus } from '@lightbus/core';
import { mixedConfig, type MixOptions } from './config.js';
import { paymentsApi } from './payments-api.js';

/** Charges `orders` orders and resolves with the results and the events heard, in order. */
export async function runShop(orders: number, mix?: MixOptions, log: (line: string) => void = console.log) {
  const bus = createBus({ apis: [paymentsApi], config: mixedConfig('shop_service', mix) });
  const heard: string[] = [];
  bus.payments.charged.listen(({ orderId, chargeId }) => {
    heard.push(orderId);
    log(`heard payments.charged for ${orderId} (${chargeId})`);
  }, { listenerName: 'mark_order_paid' });
  await bus.start();
  try {
    const results = [];
    for (let i = 1; i <= orders; i++) {
      const result = await bus.payments.charge({ orderId: `order-${i}`, amountCents: 1000 * i });
      log(`charged order-${i}: ${result.chargeId} for ${result.amountCents} cents`);
      results.push(result);
    }
    const deadline = Date.now() + 10_000;
    while (heard.length < orders && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return { results, heard };
  } finally {
    await bus.close();
  }
}
