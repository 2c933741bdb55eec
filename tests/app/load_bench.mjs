// Load benchmark of issue #25: several real browser sessions on one running crmn-viz app.
//
// Usage: node tests/app/load_bench.mjs <plan.json>   (crmn_viz/load_bench.py writes the plan)
// plan: {"url": "http://127.0.0.1:8501", "chromium": "/usr/bin/chromium", "checkpoint": "crmn-cifar10",
//        "quiet_ms": 400, "solo_rounds": 20, "load_rounds": 20, "light_pause_ms": 250,
//        "heavy_timeout_s": 900, "screenshot_dir": "/tmp/shots" (optional),
//        "solo_heavy": [request, ...],   // run one at a time, alone, after the light session's solo rounds
//        "heavy": [request, ...]}        // one browser context each, all started at once
// request: {"type": "ig", "unit": 3, "steps_key": "End"}   Attributions page, target "LSTM gate unit"
//              (unit `unit`); the heavy action is one key press on the method A "Steps" slider
//              ("End": 256, its maximum; "ArrowLeft": one step below the default 64)
//          {"type": "stats", "count": 550}   LSTM memory page, tab "Class statistics", test images of
//              the checkpoint's data set, "Number of test images" = count; the heavy action is the
//              "Compute over test images" button
//
// Phases, each announced by a {"kind": "phase", "name": ...} line (the Python side samples the
// server's memory and tags the samples with them):
//   "solo-light"  the light session alone: solo_rounds display-only changes (the LSTM memory page's
//                 "Quantity" select), each timed;
//   "solo-heavy"  each solo_heavy request alone in a context of its own (closed afterwards);
//   "setup"       one context per heavy request brought to the page and state just before its heavy
//                 action, one after the other (untimed);
//   "load"        every heavy action at once; the light session repeats its change while any heavy
//                 request is pending (at most load_rounds times);
//   "end".
// Lines: {"kind": "light", "phase", "seconds", "pending"}, {"kind": "heavy", "phase", "session",
// "type", "seconds", "done", "detail"}, {"kind": "setup", "session", "seconds"},
// {"kind": "error", "phase", "session", "message"}, {"kind": "note", ...}.
//
// "Settled" (as in browser_bench.mjs, but read from each page alone, since the server's run counts
// are shared by every session): a rerun started (the script state or the status widget seen), no
// status widget, skeleton or "waiting:" notice left (a request queued by the server counts as
// still running), the page's charts drawn and one of them (or the request's own chart) redrawn,
// and no DOM change for quiet_ms; the time is that of the last DOM change. An exception, an error
// box, a crashed page or an uncaught page error is an error; a heavy request that does not settle
// within heavy_timeout_s is not done.
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const quietMs = plan.quiet_ms ?? 400;
const log = (record) => console.log(JSON.stringify(record));
let phase = "start";

const LIGHT = { page: "LSTM memory", path: "lstm_memory", label: "Quantity", charts: 2 };
// Uncaught errors that say nothing about the app (Chromium reports them for layout loops).
const BENIGN = [/ResizeObserver loop/];

const browser = await chromium.launch({
  executablePath: plan.chromium || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    // every context is a page in its own window: none may be throttled as a background tab
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
  ],
});

function setPhase(name) {
  phase = name;
  log({ kind: "phase", name });
}

function error(session, message) {
  log({ kind: "error", phase, session: session.label, message: String(message).slice(0, 600) });
}

async function openSession(label) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const session = { label, context, page };
  page.on("pageerror", (err) => {
    const message = String(err.message || err);
    if (BENIGN.some((pattern) => pattern.test(message))) log({ kind: "note", session: label, message });
    else error(session, `uncaught page error: ${message}`);
  });
  page.on("crash", () => error(session, "the page crashed"));
  return session;
}

async function arm(session) {
  // Start watching the page: DOM changes, script-state transitions, the charts drawn before.
  await session.page.evaluate(() => {
    const watch = { last: performance.now(), sawRun: false, before: new WeakMap() };
    for (const plot of document.querySelectorAll(".js-plotly-plot")) watch.before.set(plot, plot.data);
    watch.observer = new MutationObserver(() => {
      watch.last = performance.now();
    });
    watch.observer.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    if (window.__loadWatch) window.__loadWatch.observer.disconnect();
    window.__loadWatch = watch;
  });
}

class NoRerun extends Error {}
class NotSettled extends Error {}

async function settled(session, options) {
  // Seconds from `start` (page clock) to the last DOM change before the page went quiet.
  const { start, charts = 0, redraw = false, chartIn = null, timeout = 180000, poll = 25 } = options;
  const { warningIsError = false, startTimeout = 60000 } = options;
  for (;;) {
    const seen = await session.page.evaluate(({ charts, redraw, chartIn }) => {
      const watch = window.__loadWatch;
      const app = document.querySelector('[data-testid="stApp"]');
      const state = app ? app.getAttribute("data-test-script-state") : "none";
      const connection = app ? app.getAttribute("data-test-connection-state") : "none";
      const alerts = [...document.querySelectorAll('[data-testid^="stAlertContent"]')];
      // the notice may begin with its icon ("⏳ waiting: 3 requests ahead")
      const waiting = alerts.some((alert) => /^[^\p{L}\p{N}]*waiting:/iu.test(alert.innerText));
      const busy = state === "running" || state === "rerunRequested" || waiting
        || Boolean(document.querySelector('[data-testid="stStatusWidget"]'))
        || Boolean(document.querySelector('[data-testid="stSkeleton"]'));
      if (busy) watch.sawRun = true;
      const drawn = (root) => [...root.querySelectorAll(".js-plotly-plot")].filter((p) => p.querySelector(".main-svg"));
      const plots = drawn(document);
      // the request's own chart where the page marks it (an older version of the app may not)
      const marked = chartIn ? [...document.querySelectorAll(chartIn)] : [];
      const own = marked.length ? marked.flatMap(drawn) : plots;
      const text = (testid) => {
        const found = document.querySelector(`[data-testid="${testid}"]`);
        return found ? found.innerText.slice(0, 300) : null;
      };
      return {
        now: performance.now(), last: watch.last, sawRun: watch.sawRun, state, connection, busy, waiting,
        plots: plots.length, enough: plots.length >= charts,
        redrawn: !redraw || own.some((p) => !watch.before.has(p) || watch.before.get(p) !== p.data),
        exception: text("stException"), error: text("stAlertContentError"), warning: text("stAlertContentWarning"),
      };
    }, { charts, redraw, chartIn });
    if (seen.exception) throw new Error(`exception on the page: ${seen.exception}`);
    if (seen.error) throw new Error(`error box on the page: ${seen.error}`);
    if (warningIsError && seen.warning) throw new Error(`warning on the page: ${seen.warning}`);
    if (seen.connection === "DISCONNECTED_FOREVER") throw new Error("the page lost its server connection");
    const started = seen.sawRun || (redraw && seen.redrawn);
    if (started && !seen.busy && seen.enough && seen.redrawn && seen.now - seen.last >= quietMs) {
      return (seen.last - start) / 1000;
    }
    if (!started && seen.now - start > startTimeout) {
      throw new NoRerun(`no rerun started within ${startTimeout / 1000} s of the action (state ${seen.state})`);
    }
    if (seen.now - start > timeout) {
      throw new NotSettled(`not settled after ${timeout / 1000} s (state ${seen.state}, waiting ${seen.waiting}, `
        + `${seen.plots}/${charts} charts, redrawn ${seen.redrawn})`);
    }
    await session.page.waitForTimeout(poll);
  }
}

async function quiet(session, timeout = 300000) {
  // Wait, untimed, until whatever runs now (a page load, a checkpoint switch) is over.
  await arm(session);
  const start = await session.page.evaluate(() => performance.now());
  for (;;) {
    const seen = await session.page.evaluate(() => {
      const app = document.querySelector('[data-testid="stApp"]');
      const state = app ? app.getAttribute("data-test-script-state") : "none";
      const busy = !app || state === "running" || state === "rerunRequested"
        || Boolean(document.querySelector('[data-testid="stStatusWidget"]'))
        || Boolean(document.querySelector('[data-testid="stSkeleton"]'));
      const exception = document.querySelector('[data-testid="stException"]');
      return { now: performance.now(), last: window.__loadWatch.last, busy, exception: exception ? exception.innerText.slice(0, 300) : null };
    });
    if (seen.exception) throw new Error(`exception on the page: ${seen.exception}`);
    if (!seen.busy && seen.now - seen.last >= quietMs) return;
    if (seen.now - start > timeout) throw new Error(`the page did not go quiet within ${timeout / 1000} s`);
    await session.page.waitForTimeout(100);
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

async function timed(session, attempt, options) {
  // attempt(): the action (done once more if the app never received it); returns the settle time.
  for (let tries = 1; ; tries++) {
    await arm(session);
    const start = await attempt();
    try {
      return await settled(session, { ...options, start });
    } catch (err) {
      if (tries > 1 || !(err instanceof NoRerun)) throw err;
      log({ kind: "retry", phase, session: session.label, message: String(err.message) });
    }
  }
}

async function chooseCheckpoint(session, name) {
  const { page } = session;
  const input = page.locator('[data-testid="stSidebar"] input[role="combobox"][aria-label="Checkpoint"]').first();
  await input.waitFor({ timeout: 120000 });
  if ((await input.inputValue()) === name) return;
  await input.click();
  await page.getByRole("option", { name, exact: true }).click();
  await quiet(session);
  const shown = await input.inputValue();
  if (shown !== name) throw new Error(`the checkpoint ${name} could not be chosen (shows ${shown})`);
}

async function openPage(session, path) {
  // Load the app on one page (its url_path), the checkpoint chosen, and wait until it is quiet.
  await session.page.goto(`${plan.url}/${path}`, { waitUntil: "commit", timeout: 120000 });
  await session.page.locator('[data-testid="stApp"]').waitFor({ timeout: 120000 });
  await quiet(session);
  await chooseCheckpoint(session, plan.checkpoint);
}

const main = (page) => page.locator('[data-testid="stMain"]');

async function segmented(session, group, label) {
  const radio = main(session.page).getByRole("radiogroup", { name: group, exact: true })
    .getByRole("radio", { name: label, exact: true });
  if ((await radio.getAttribute("aria-checked")) === "true") return;
  await radio.click();
  await quiet(session);
}

async function numberInput(session, label, value) {
  const input = main(session.page).getByLabel(label, { exact: true }).first();
  if (Number(await input.inputValue()) === value) return;
  await input.fill(String(value));
  await input.press("Enter");
  await quiet(session);
  const shown = Number(await input.inputValue());
  if (shown !== value) throw new Error(`${label}: ${value} could not be entered (shows ${shown})`);
}

// ------------------------------------------------------------------ the light session

async function lightChange(session) {
  // The "Quantity" select set to another option: a display-only change (the gates are cached).
  const { page } = session;
  const attempt = async () => {
    const input = main(page).locator(`input[role="combobox"][aria-label="${LIGHT.label}"]`).first();
    const current = await input.inputValue();
    await input.click();
    const options = page.getByRole("option");
    await options.first().waitFor({ timeout: 60000 });
    const texts = await options.allInnerTexts();
    const other = texts.findIndex((text) => text.trim() !== current.trim());
    if (other < 0) throw new Error(`${LIGHT.label}: no other option than ${current}`);
    return clickAndTime(options.nth(other));
  };
  return timed(session, attempt, { charts: LIGHT.charts, redraw: true, timeout: 300000 });
}

async function lightRounds(session, rounds, pending) {
  // Up to `rounds` timed changes: all of them without pending(), else the first one and more
  // while pending() (the heavy requests not finished) is above zero.
  for (let round = 0; round < rounds && (!pending || round === 0 || pending() > 0); round++) {
    const waiting = pending ? pending() : 0;
    try {
      const seconds = await lightChange(session);
      log({ kind: "light", phase, seconds, pending: waiting });
    } catch (err) {
      error(session, `light change: ${err.message || err}`);
      await quiet(session).catch(() => {});
    }
    await session.page.waitForTimeout(plan.light_pause_ms ?? 250);
  }
}

// ------------------------------------------------------------------ heavy requests

async function prepare(session, request) {
  // Bring the session to the state just before its heavy action; returns the action.
  const { page } = session;
  if (request.type === "ig") {
    await openPage(session, "attributions");
    await segmented(session, "Target", "LSTM gate unit");
    await numberInput(session, "Unit", request.unit);
    const slider = main(page).locator('input[type="range"][aria-label="Steps"]').first();
    await slider.waitFor({ timeout: 60000 });
    const before = Number(await slider.inputValue());
    return {
      chartIn: '[class*="st-key-attr_fig_0"]',  // show(..., key="attr_fig_0"): method A's chart
      charts: 2,
      warningIsError: false,
      act: async () => {
        await slider.focus();
        const start = await page.evaluate(() => performance.now());
        await page.keyboard.press(request.steps_key || "End");
        return start;
      },
      check: async () => {
        const steps = Number(await slider.inputValue());
        if (steps === before) throw new Error(`the Steps slider did not move (still ${steps})`);
        return `integrated gradients, ${steps} steps, gate unit ${request.unit}`;
      },
    };
  }
  if (request.type === "stats") {
    await openPage(session, "lstm_memory");
    await page.getByRole("tab", { name: "Class statistics" }).click();
    await quiet(session);
    const test = main(page).getByRole("radiogroup", { name: "Images", exact: true }).getByRole("radio", { name: /^Test images of / });
    if ((await test.count()) === 0) throw new Error("this checkpoint offers no test images for statistics");
    await test.first().click();
    await quiet(session);
    await numberInput(session, "Number of test images", request.count);
    const button = main(page).getByRole("button", { name: "Compute over test images" });
    return {
      chartIn: null,
      charts: 1,
      warningIsError: true,  // "The ... test set is not on this machine"
      act: () => clickAndTime(button),
      check: async () => `test-set gate statistics, ${request.count} images`,
    };
  }
  throw new Error(`unknown heavy request type ${request.type}`);
}

async function heavy(session, request, action) {
  // Do the heavy action and wait for its chart; logs and returns whether it was done.
  const record = { kind: "heavy", phase, session: session.label, type: request.type, seconds: null, done: false };
  try {
    record.seconds = await timed(session, action.act, {
      charts: action.charts, redraw: true, chartIn: action.chartIn, poll: 250,
      timeout: (plan.heavy_timeout_s ?? 900) * 1000, warningIsError: action.warningIsError, startTimeout: 120000,
    });
    record.detail = await action.check();
    record.done = true;
  } catch (err) {
    record.detail = String(err.message || err).slice(0, 600);
    if (!(err instanceof NotSettled)) error(session, `heavy request: ${record.detail}`);
  }
  log(record);
  return record.done;
}

async function screenshot(session, name) {
  if (!plan.screenshot_dir) return;
  fs.mkdirSync(plan.screenshot_dir, { recursive: true });
  await session.page.screenshot({ path: `${plan.screenshot_dir}/${name}.png` }).catch(() => {});
}

// ------------------------------------------------------------------ the run

const light = await openSession("light");
try {
  setPhase("solo-light");
  await openPage(light, LIGHT.path);
  await lightRounds(light, plan.solo_rounds ?? 2, null);

  setPhase("solo-heavy");
  for (const [index, request] of (plan.solo_heavy || []).entries()) {
    const session = await openSession(`solo-${index}`);
    try {
      if (!(await heavy(session, request, await prepare(session, request)))) await screenshot(session, session.label);
    } catch (err) {
      error(session, `setup: ${err.message || err}`);
      await screenshot(session, `solo-${index}`);
    }
    await session.context.close();
  }

  setPhase("setup");
  const ready = [];
  for (const [index, request] of plan.heavy.entries()) {
    const session = await openSession(`heavy-${index}`);
    const t0 = Date.now();
    try {
      ready.push({ session, request, action: await prepare(session, request) });
      log({ kind: "setup", session: session.label, seconds: (Date.now() - t0) / 1000 });
    } catch (err) {
      error(session, `setup: ${err.message || err}`);
      await screenshot(session, session.label);
      log({ kind: "heavy", phase, session: session.label, type: request.type, seconds: null, done: false, detail: "setup failed" });
    }
  }

  setPhase("load");
  let pending = ready.length;
  const heavies = ready.map(async ({ session, request, action }) => {
    const done = await heavy(session, request, action);
    if (!done) await screenshot(session, session.label);
    pending -= 1;
  });
  await Promise.all([lightRounds(light, plan.load_rounds ?? 2, () => pending), ...heavies]);
  setPhase("end");
} catch (err) {
  error(light, `the driver stopped: ${err.message || err}`);
  await screenshot(light, "light");
  setPhase("end");
}
await browser.close();
