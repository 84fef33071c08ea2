// The payments service's worker: serves `payments.charge` (over NATS) and fires
// `payments.charged` (over Redis, or RabbitMQ) for each charge. Run: tsx src/payments-service.ts
import { randomUUID } from 'node:crypto';
import { createBus } from '@lightbus/core';
import { mixedConfig } from './config.js';
import { paymentsApi } from './payments-api.js';

export const bus = createBus({ apis: [paymentsApi], config: mixedConfig('payments_service') });

bus.registerApi(paymentsApi, {
  charge: async ({ orderId, amountCents }) => {
    const chargeId = `ch_${randomUUID().slice(0, 8)}`;
    await bus.payments.charged.fire({ orderId, chargeId, amountCents });
    return { chargeId, amountCents };
  },
});

if (import.meta.url === `file://${process.argv[1]}`) {
  await bus.start();
  console.log('payments_service ready');
  const stop = () => void bus.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
