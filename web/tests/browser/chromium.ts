// Debian's Chromium, driven by playwright-core (no browser download). playwright-core
// gives every launch a fresh temporary profile (its own --user-data-dir, removed at close):
// passing --user-data-dir ourselves is refused by launch(), which the two contexts need.
import type { BrowserType } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

export function launchChromium(type: BrowserType) {
  return type.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}
