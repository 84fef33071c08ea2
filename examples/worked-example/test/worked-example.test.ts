import { describe, expect, it } from 'vitest';
import { runWorkedExample } from '../src/worked-example.js';

describe('the worked example', () => {
  it('resizes through the image service, matches competitor prices and counts page views once each', async () => {
    const lines: string[] = [];
    const result = await runWorkedExample((line) => lines.push(line));
    expect(result.pageViews).toEqual({ 'tea-pot': 2, mug: 1 });
    expect(result.prices).toEqual({ 'tea-pot': 1898, mug: 649 });
    expect(result.pages[0]).toBe('Tea pot: 18.98 EUR, thumbnail https://img.example.com/tea-pot.jpg?w=200&h=200');
    expect(lines).toContain('store: mug now costs 649 (was 700; a competitor asks 650)');
  });
});
