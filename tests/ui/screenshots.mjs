// Headless Chromium through playwright-core: the DAG's grid, its docs and its trigger form.
// Usage: node tests/ui/screenshots.mjs BASE_URL OUTPUT_DIR (scripts/ui_screenshots.sh runs it).
import { createRequire } from "node:module";

const require = createRequire(new URL("../../.local/ui-tools/", import.meta.url));
const { chromium } = require("playwright-core");
const [base, out] = process.argv.slice(2);
const dag = `${base}/dags/weekly_sales_forecast`;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });

await page.goto(dag, { waitUntil: "networkidle" });
await page.screenshot({ path: `${out}/grid.png` });

await page.goto(`${dag}/runs`, { waitUntil: "networkidle" });
await page.screenshot({ path: `${out}/runs.png` });

await page.goto(dag, { waitUntil: "networkidle" });
await page.getByRole("button", { name: /docs/i }).first().click();
await page.waitForTimeout(1500);
await page.screenshot({ path: `${out}/docs.png` });
await page.keyboard.press("Escape");

await page.getByRole("button", { name: /^trigger/i }).first().click();
await page.waitForTimeout(1500);
await page.screenshot({ path: `${out}/trigger_form.png` });
for (const section of ["Run scope", "Compute", "Azure Batch"]) {
  const header = page.getByText(section, { exact: true }).first();
  if (await header.count()) {
    await header.click();
    await page.waitForTimeout(500);
  }
}
await page.screenshot({ path: `${out}/trigger_form_sections.png`, fullPage: true });
await browser.close();
