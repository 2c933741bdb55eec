// Time the running crmn-viz app in Chromium (playwright-core): cold first chart, warm navigation
// and one display-only change per page, and a trivial rerun as the unit for ratios.
//
// Usage: node tests/app/browser_bench.mjs <plan.json>
// plan: {"targets": [{"label": "after", "url": "http://127.0.0.1:8501",
//                     "forwards_file": "/tmp/forwards.txt", "runs_file": "/tmp/runs.txt"}],  // both optional
//        "chromium": "/usr/bin/chromium", "repeats": 3, "warm_up": true, "quiet_ms": 400,
//        "only_cold": false, "screenshot_dir": "/tmp/shots" (optional, a screenshot on a failure),
//        "unit": {"page": "Export", "change": {"kind": "checkbox", "label": "Keep titles"}},
//        "groups": [{"checkpoint": "crmn-cifar10", "pages": [
//            {"title": "LSTM memory", "charts": 2, "change": {"kind": "select", "label": "Quantity"}}]}]}
// Several targets (two versions of the app, each on its own fresh server) are measured in
// alternation, step by step, so that machine noise hits them alike.
// change kinds: select (pick another option), segmented (click the unselected option), slider
// (one arrow-key step), checkbox (click it).
// forwards_file: where the server writes how many network evaluations it has made so far; the
// difference over each step is reported as "evaluations" (null without the file).
// runs_file: where the server writes "<script runs started> <finished>" (optional: without it, a
// rerun is seen from the page's script-state attribute, which can miss a very fast one).
// Prints one JSON line per measurement: {"label", "kind": "cold"|"warm-up"|"nav"|"change"|"unit",
// "page", "widget", "seconds", "evaluations"}; a {"kind": "error"} line and exit status 1 on a failure.
//
// "Settled": after the action a script run must have started and finished (runs_file, else the
// page's script state), with no status widget and no skeleton in the page, the page's charts drawn
// (and, for a change on a page with charts, at least one chart redrawn), and no DOM change for
// quiet_ms. The time reported is that of the last DOM change, so the quiet window is not counted.
// An action after which no rerun starts within 15 s (a click the app never received) is done once
// more, with a {"kind": "retry"} line; a second miss is an error.
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const quietMs = plan.quiet_ms ?? 400;
const log = (record) => console.log(JSON.stringify(record));

const browser = await chromium.launch({
  executablePath: plan.chromium || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});
const targets = [];
for (const target of plan.targets) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  targets.push({ ...target, page: await context.newPage() });
}
let page = targets[0].page;  // the target being driven: every helper below acts on it
let target = targets[0];

function evaluations() {
  if (!target.forwards_file) return null;
  try {
    return Number(fs.readFileSync(target.forwards_file, "utf8").trim() || 0);
  } catch {
    return 0;  // no network evaluation yet
  }
}

async function arm() {
  // Start watching: DOM changes, script state transitions, and the charts drawn before the action.
  await page.evaluate(() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const watch = { last: performance.now(), sawRun: false, before: new WeakMap() };
    for (const plot of document.querySelectorAll(".js-plotly-plot")) watch.before.set(plot, plot.data);
    watch.observer = new MutationObserver((records) => {
      watch.last = performance.now();
      for (const record of records) {
        if (record.attributeName === "data-test-script-state") {
          const now = record.target.getAttribute("data-test-script-state");
          if (now === "running" || record.oldValue === "running") watch.sawRun = true;
        }
      }
    });
    watch.observer.observe(document.body, {
      subtree: true, childList: true, attributes: true, characterData: true, attributeOldValue: true,
    });
    if (window.__benchWatch) window.__benchWatch.observer.disconnect();
    window.__benchWatch = watch;
    return Boolean(app);
  });
}

function serverRuns() {
  // {started, finished} script runs of the server so far, when it writes them (null otherwise).
  if (!target.runs_file) return null;
  try {
    const [started, finished] = fs.readFileSync(target.runs_file, "utf8").trim().split(/\s+/).map(Number);
    return { started: started || 0, finished: finished || 0 };
  } catch {
    return { started: 0, finished: 0 };
  }
}

async function settled(start, charts, redraw, runsBefore, timeout = 180000) {
  // Seconds from `start` (page clock) to the last DOM change before the app went quiet.
  // With the server's run counts, "a rerun happened" is read from the server: a very fast
  // rerun can leave no trace in the page's script-state attribute (React renders the last state).
  for (;;) {
    const seen = await page.evaluate(({ charts, redraw }) => {
      const watch = window.__benchWatch;
      const app = document.querySelector('[data-testid="stApp"]');
      const state = app ? app.getAttribute("data-test-script-state") : "none";
      if (state === "running") watch.sawRun = true;
      const busy = state === "running" || state === "rerunRequested"
        || Boolean(document.querySelector('[data-testid="stStatusWidget"]'))
        || Boolean(document.querySelector('[data-testid="stSkeleton"]'));
      const plots = [...document.querySelectorAll(".js-plotly-plot")].filter((p) => p.querySelector(".main-svg"));
      const exception = document.querySelector('[data-testid="stException"]');
      return {
        now: performance.now(), last: watch.last, sawRun: watch.sawRun, state, busy, plots: plots.length,
        redrawn: !redraw || plots.some((p) => !watch.before.has(p) || watch.before.get(p) !== p.data),
        exception: exception ? exception.innerText.slice(0, 300) : null, enough: plots.length >= charts,
      };
    }, { charts, redraw });
    if (seen.exception) throw new Error(`exception on the page: ${seen.exception}`);
    const runs = serverRuns();
    const started = runs ? runs.started > runsBefore.started : seen.sawRun;
    const ran = runs ? started && runs.finished > runsBefore.finished && runs.finished >= runs.started : seen.sawRun;
    if (ran && !seen.busy && seen.enough && seen.redrawn && seen.now - seen.last >= quietMs) {
      return (seen.last - start) / 1000;
    }
    if (!started && seen.now - start > 15000) {
      throw new Error(`no rerun started within 15 s of the action (state ${seen.state})`);
    }
    if (seen.now - start > timeout) {
      throw new Error(`not settled after ${timeout / 1000} s (state ${seen.state}, ran ${ran}, `
        + `${seen.plots}/${charts} charts, redrawn ${seen.redrawn})`);
    }
    await page.waitForTimeout(25);
  }
}

async function clickAndTime(locator) {
  // Click in the page itself, noting the time just before, so no driver latency is counted.
  return locator.evaluate((element) => {
    const start = performance.now();
    element.click();
    return start;
  });
}

async function measure(kind, pageTitle, widget, charts, redraw, attempt) {
  // attempt(): do the action (again, on a retry) and return its start time on the page clock.
  const before = evaluations();
  let seconds;
  for (let tries = 1; ; tries++) {
    await arm();
    const runsBefore = serverRuns();
    const start = await attempt();
    try {
      seconds = await settled(start, charts, redraw, runsBefore);
      break;
    } catch (error) {
      // A click the app never received (no rerun at all) is tried once more, and said.
      if (tries > 1 || !String(error.message).includes("no rerun started")) throw error;
      log({ label: target.label, kind: "retry", page: pageTitle, widget, message: String(error.message) });
    }
  }
  const after = evaluations();
  const record = {
    label: target.label, kind, page: pageTitle, widget, seconds, evaluations: before === null ? null : after - before,
  };
  log(record);
  return record;
}

function sidebarLink(title) {
  return page.locator('[data-testid="stSidebarNav"] a').filter({ hasText: title }).first();
}

async function navigate(title, charts, kind = "nav") {
  await sidebarLink(title).waitFor({ timeout: 60000 });
  return measure(kind, title, null, charts, false, () => clickAndTime(sidebarLink(title)));
}

async function change(pageTitle, spec, charts, kind = "change") {
  const redraw = charts > 0;
  const main = page.locator('[data-testid="stMain"]');
  let attempt;
  if (spec.kind === "select") {
    attempt = async () => {
      const input = main.locator(`input[role="combobox"][aria-label="${spec.label}"]`).first();
      const current = await input.inputValue();
      await input.click();
      const options = page.getByRole("option");
      await options.first().waitFor({ timeout: 30000 });
      const texts = await options.allInnerTexts();
      const other = texts.findIndex((text) => text.trim() !== current.trim());
      if (other < 0) throw new Error(`${spec.label}: no other option than ${current}`);
      return clickAndTime(options.nth(other));
    };
  } else if (spec.kind === "segmented") {
    attempt = () => clickAndTime(
      main.getByRole("radiogroup", { name: spec.label, exact: true }).locator('[aria-checked="false"]').first(),
    );
  } else if (spec.kind === "checkbox") {
    // The input itself: a scripted click on react-aria's label does not toggle it.
    attempt = () => clickAndTime(
      main.locator('[data-testid="stCheckbox"], [data-testid="stToggle"]').filter({ hasText: spec.label }).locator("input").first(),
    );
  } else if (spec.kind === "slider") {
    attempt = async () => {
      const input = main.locator(`input[type="range"][aria-label="${spec.label}"]`).first();
      const [value, low] = await input.evaluate((e) => [Number(e.value), Number(e.min)]);
      await input.focus();
      const start = await page.evaluate(() => performance.now());
      await page.keyboard.press(value > low ? "ArrowLeft" : "ArrowRight");
      return start;
    };
  } else {
    throw new Error(`unknown change kind ${spec.kind}`);
  }
  return measure(kind, pageTitle, spec.label, charts, redraw, attempt);
}

async function quietApp() {
  // Wait for whatever runs now (a page load, a checkpoint switch) without timing it.
  await arm();
  const start = await page.evaluate(() => performance.now());
  await page.evaluate(({ quietMs }) => new Promise((resolve) => {
    const watch = window.__benchWatch;
    const tick = () => {
      const app = document.querySelector('[data-testid="stApp"]');
      const state = app ? app.getAttribute("data-test-script-state") : "none";
      const busy = state === "running" || state === "rerunRequested"
        || document.querySelector('[data-testid="stStatusWidget"]') || document.querySelector('[data-testid="stSkeleton"]');
      if (!busy && performance.now() - watch.last >= quietMs) return resolve();
      setTimeout(tick, 50);
    };
    tick();
  }), { quietMs });
  return start;
}

async function chooseCheckpoint(name) {
  const input = page.locator('[data-testid="stSidebar"] input[role="combobox"][aria-label="Checkpoint"]').first();
  if ((await input.inputValue()) === name) return;
  await input.click();
  await page.getByRole("option", { name, exact: true }).click();
  await quietApp();
  const shown = await input.inputValue();
  if (shown !== name) throw new Error(`the checkpoint ${name} could not be chosen (shows ${shown})`);
}

function drive(next) {
  target = next;
  page = next.page;
}

try {
  for (const next of targets) {
    // Cold: a fresh server, from page.goto to the first chart drawn.
    drive(next);
    const before = evaluations();
    const t0 = Date.now();
    await page.goto(target.url, { waitUntil: "commit", timeout: 120000 });
    await page.waitForSelector(".js-plotly-plot .main-svg", { timeout: 300000 });
    const seconds = (Date.now() - t0) / 1000;
    await quietApp();
    const counted = before === null ? null : evaluations() - before;
    log({ label: target.label, kind: "cold", page: "first page", widget: null, seconds, evaluations: counted });
  }
  if (!plan.only_cold) {
    const unit = plan.unit;
    for (const group of plan.groups) {
      for (const next of targets) {
        drive(next);
        await chooseCheckpoint(group.checkpoint);
        if (!plan.warm_up) continue;
        // Every page and both states of every change once, so the timed runs are warm.
        for (const shown of group.pages) {
          await navigate(shown.title, shown.charts, "warm-up");
          for (let k = 0; k < 2; k++) await change(shown.title, shown.change, shown.charts, "warm-up");
          await navigate(unit.page, 0, "warm-up");
        }
      }
      for (let repeat = 0; repeat < (plan.repeats || 1); repeat++) {
        for (const shown of group.pages) {
          for (const next of targets) {
            drive(next);
            await navigate(shown.title, shown.charts);
            await change(shown.title, shown.change, shown.charts);
            await navigate(unit.page, 0);
            await change(unit.page, unit.change, 0, "unit");
          }
        }
      }
    }
  }
} catch (error) {
  log({ label: target.label, kind: "error", message: String(error.message || error) });
  if (plan.screenshot_dir) {
    fs.mkdirSync(plan.screenshot_dir, { recursive: true });
    await page.screenshot({ path: `${plan.screenshot_dir}/bench_${target.label}_failed.png` }).catch(() => {});
  }
  await browser.close();
  process.exit(1);
}
await browser.close();
