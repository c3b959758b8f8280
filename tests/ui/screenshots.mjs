// Headless Chromium through playwright-core: the DAG's runs, grid, docs and trigger form, then a
// reforecast triggered through the form as a person would. With "runs-only", just the runs list.
// Usage: node tests/ui/screenshots.mjs BASE_URL OUTPUT_DIR [runs-only] (scripts/ui_screenshots.sh runs it).
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(new URL("../../.local/ui-tools/", import.meta.url));
const { chromium } = require("playwright-core");
const [base, out, mode] = process.argv.slice(2);
const dag = `${base}/dags/weekly_sales_forecast`;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });

await page.goto(`${dag}/runs`, { waitUntil: "networkidle" });
await page.screenshot({ path: `${out}/runs${mode ? "_after_form_run" : ""}.png` });
if (mode === "runs-only") {
  await page.goto(dag, { waitUntil: "networkidle" });
  await page.screenshot({ path: `${out}/overview_after_form_run.png` });
  await browser.close();
  process.exit(0);
}

await page.goto(dag, { waitUntil: "networkidle" });
await page.screenshot({ path: `${out}/overview.png` });
const labels = await page.locator("button").evaluateAll((buttons) =>
  buttons.map((b) => `${b.getAttribute("aria-label") ?? ""} | ${b.textContent.trim()}`));
writeFileSync(`${out}/buttons.txt`, labels.join("\n"));

const docs = page.locator('button[aria-label="Dag Docs"]').first();
if (await docs.count()) {
  await docs.click();
  await page.waitForTimeout(1500);
  await page.screenshot({ path: `${out}/dag_docs.png` });
  await page.keyboard.press("Escape");
  await page.waitForTimeout(500);
}

// The weekly run's report task: its extra links, and where they lead.
await page.goto(`${dag}/runs/weekly__origin-107__all-products/tasks/report`, { waitUntil: "networkidle" });
await page.waitForTimeout(1500);
if (!(await page.getByRole("link", { name: "Forecast report" }).count())) {
  await page.getByRole("tab", { name: "Details" }).or(page.getByText("Details", { exact: true })).first().click();
  await page.waitForTimeout(1500);
}
await page.screenshot({ path: `${out}/report_task_links.png` });
for (const [name, file] of [["Forecast report", "report_page"], ["Forecasts", "forecasts_page"]]) {
  const link = page.getByRole("link", { name }).first();
  const href = (await link.count()) ? await link.getAttribute("href") : null;
  writeFileSync(`${out}/${file}.href.txt`, `${href}\n`);
  if (href) {
    const linked = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
    await linked.context().addCookies(await page.context().cookies());
    await linked.goto(new URL(href, base).href, { waitUntil: "networkidle" });
    await linked.screenshot({ path: `${out}/${file}.png`, fullPage: file === "report_page" });
    await linked.close();
  }
}
await page.goto(dag, { waitUntil: "networkidle" });

await page.getByRole("button", { name: /^trigger/i }).first().click();
await page.waitForTimeout(1500);
for (const [index, section] of ["Run scope", "Compute", "Azure Batch"].entries()) {
  await page.getByText(section, { exact: true }).first().click();
  await page.waitForTimeout(700);
  await page.screenshot({ path: `${out}/trigger_form_${index + 1}_${section.toLowerCase().replace(" ", "_")}.png` });
}

// A person's reforecast through the form: products typed as text, the origin week as a number.
await page.getByText("Run scope", { exact: true }).first().click();  // one section open at a time
await page.waitForTimeout(700);
const field = (name) => page.locator(`[name="element_${name}"]`).first();
await field("products").fill("3, 4");
await field("origin_week").fill("107");
await page.screenshot({ path: `${out}/trigger_form_4_filled.png` });
const dialog = page.getByRole("dialog").last();
writeFileSync(`${out}/dialog_buttons.txt`, (await dialog.locator("button").evaluateAll((buttons) =>
  buttons.map((b) => `${b.textContent.trim()} disabled=${b.disabled}`))).join("\n"));
await dialog.getByRole("button", { name: /^Trigger$/ }).last().click();
await page.waitForTimeout(3000);
await page.screenshot({ path: `${out}/after_trigger.png` });
await browser.close();
