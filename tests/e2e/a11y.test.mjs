// Accessibility and layout: every control has an accessible name, the tabs work from the
// keyboard, text contrast meets WCAG AA in the light and the dark scheme, and no panel is
// wider than a phone's screen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';
import { loadFixture, classify } from './models.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
const TABS = ['text', 'images', 'finetune', 'about'];
let server;

before(async () => {
  server = await serve(DIST);
});
after(async () => {
  await server?.close();
});

/** Visible form controls without an accessible name (label, aria-label(ledby), title, text). */
function unnamedControls() {
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const named = (el) => {
    if (el.getAttribute('aria-label')?.trim()) return true;
    const by = el.getAttribute('aria-labelledby');
    if (by && by.split(/\s+/).some((id) => document.getElementById(id)?.textContent.trim())) return true;
    if (el.labels && [...el.labels].some((l) => l.textContent.trim())) return true;
    if (el.title?.trim()) return true;
    if ((el.tagName === 'BUTTON' || el.getAttribute('role') === 'tab') && el.textContent.trim()) return true;
    return false;
  };
  return [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => visible(el) || el.type === 'file')
    .filter((el) => !named(el))
    .map((el) => el.outerHTML.slice(0, 120));
}

/** Text whose contrast with its background is below WCAG AA (4.5:1, 3:1 for large text). */
function lowContrastText() {
  const parse = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return { r, g, b, a };
  };
  const lum = ({ r, g, b }) => {
    const f = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return parse(getComputedStyle(document.documentElement).backgroundColor) ?? { r: 255, g: 255, b: 255 };
  };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (!el.getClientRects().length || ['SCRIPT', 'STYLE', 'CANVAS', 'svg', 'OPTION'].includes(el.tagName)) continue;
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
    if (!text) continue;
    const s = getComputedStyle(el);
    if (s.visibility === 'hidden' || Number(s.opacity) === 0) continue;
    const fg = parse(s.color);
    const bg = background(el);
    if (!fg) continue;
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(s.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) bad.push(`${ratio.toFixed(2)}:1 "${text.slice(0, 40)}" (${s.color} on rgb(${bg.r},${bg.g},${bg.b}))`);
  }
  return bad;
}

test('controls are named, tabs work from the keyboard, contrast passes AA in light and dark', async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu`);
    await loadFixture(page, 'bert-uncased-cls');
    await classify(page, ['a quietly moving film']);
    await page.getByTestId('explain-attention').first().click();
    await page.getByTestId('attention-heatmap').waitFor();

    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const tab of TABS) {
        await page.getByTestId(`tab-${tab}`).click();
        assert.deepEqual(await page.evaluate(unnamedControls), [], `${tab}: controls without a name`);
        assert.deepEqual(await page.evaluate(lowContrastText), [], `${tab} (${scheme}): text below AA contrast`);
      }
    }

    // Keyboard: focus the first tab, move with the arrow keys or Tab, activate with Enter.
    await page.getByTestId('tab-text').focus();
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement?.dataset.testid ?? document.activeElement?.tagName);
    assert.ok(focused, 'Tab moves the focus somewhere');
    await page.getByTestId('tab-images').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('[data-testid=tab-images]').getAttribute('aria-selected') === 'true');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('no panel is wider than a 360 px phone screen', async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu`);
    await page.setViewportSize({ width: 360, height: 740 });
    await loadFixture(page, 'bert-uncased-cls');
    await classify(page, ['a quietly moving film', 'dull']);
    await page.getByTestId('explain-attention').first().click();
    await page.getByTestId('attention-grid').waitFor();
    for (const tab of TABS) {
      await page.getByTestId(`tab-${tab}`).click();
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 360, `${tab}: the page is ${width} px wide at a 360 px viewport`);
      if (tab === 'text') await page.screenshot({ path: 'docs/screenshots/phone-text.png', fullPage: true });
    }
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
