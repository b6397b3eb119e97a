// What the browser scripts share: the JSON they read on stdin, and Debian's headless
// Chromium launched with the flags this machine needs (no sandbox as root, no
// background networking: the closed network refuses Google's hosts).
import { chromium } from 'playwright-core';

export async function readInput() {
  return JSON.parse(await new Promise((resolve) => {
    let data = '';
    process.stdin.on('data', (chunk) => { data += chunk; });
    process.stdin.on('end', () => resolve(data));
  }));
}

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
