// Drive the running crmn-viz app in Chromium (playwright-core) and save a screenshot of every page.
//
// Usage: node tests/app/browser_check.mjs <plan.json>
// plan: {"url": "http://127.0.0.1:8501", "out": "artifacts/screenshots", "image": "x.png",
//        "bad_image": "bad.png", "checkpoints": {"crmn": "...", "renet": "...", "rir": "...", "faces": "..."},
//        optional, for the state steps 14-19: "second_image": "y.png", "truncated_image": "z.png",
//        "face_image": "face.jpg", "gallery": {"mnist": ["digit0_08859.png", ...], ...}}
// Prints one JSON line per step; exits non-zero on the first failure (after a screenshot).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
fs.mkdirSync(plan.out, { recursive: true });
for (const old of fs.readdirSync(plan.out)) if (old.endsWith(".png")) fs.rmSync(path.join(plan.out, old));
const log = (record) => console.log(JSON.stringify(record));

const browser = await chromium.launch({
  executablePath: plan.chromium || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
const problems = [];
page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));

async function settle(timeout = 120000) {
  // Streamlit shows its status widget while a script runs; wait until it is gone for a moment.
  await page.waitForSelector('[data-testid="stApp"]', { timeout });
  const deadline = Date.now() + timeout;
  let quiet = 0;
  while (Date.now() < deadline) {
    const running = await page.locator('[data-testid="stStatusWidget"]').count();
    const skeleton = await page.locator('[data-testid="stSkeleton"]').count();
    quiet = running || skeleton ? 0 : quiet + 1;
    if (quiet >= 4) return;
    await page.waitForTimeout(250);
  }
  throw new Error("the app did not finish running");
}

async function expectNoException(step) {
  const exceptions = await page.locator('[data-testid="stException"]').allInnerTexts();
  if (exceptions.length) throw new Error(`${step}: exception on the page: ${exceptions[0].slice(0, 400)}`);
}

async function waitForFigures(step, minimum) {
  if (!minimum) return 0;
  await page.waitForFunction(
    (n) => document.querySelectorAll(".js-plotly-plot .main-svg").length >= n, minimum, { timeout: 60000 },
  ).catch(() => {});
  const count = await page.locator(".js-plotly-plot").count();
  if (count < minimum) throw new Error(`${step}: expected at least ${minimum} figures, found ${count}`);
  return count;
}

async function shot(name) {
  // Streamlit scrolls inside its main container: grow the window to the content to see it all.
  const height = await page.evaluate(() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const side = document.querySelector('[data-testid="stSidebarContent"]');
    return Math.max(main ? main.scrollHeight : 0, side ? side.scrollHeight : 0, 900);
  });
  await page.setViewportSize({ width: 1400, height: Math.min(height + 40, 7000) });
  await page.waitForTimeout(800);  // plotly relayout after the resize
  const file = path.join(plan.out, `${name}.png`);
  await page.screenshot({ path: file });
  await page.setViewportSize({ width: 1400, height: 1000 });
  return file;
}

async function openPage(title) {
  await page.locator('[data-testid="stSidebarNav"] a').filter({ hasText: title }).first().click();
  await settle();
}

async function chooseCheckpoint(name) {
  const box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first();
  await box.click();
  await page.getByRole("option", { name, exact: true }).click();
  await settle();
}

async function imageSource(label) {
  await page.getByRole("radiogroup", { name: "Image source" }).getByRole("radio", { name: label }).click();
  await settle();
}

async function upload(file) {
  await page.locator('[data-testid="stSidebar"] input[type="file"]').setInputFiles(file);
  await settle();
}

async function removeUploads() {
  const remove = page.locator('[data-testid="stSidebar"]').getByRole("button", { name: /^Remove / });
  while (await remove.count()) { await remove.first().click(); await settle(); }
}

async function pickerLabel(label = "Image") {
  // The image picker's shown text, e.g. "2. second.png" (null when the page has one image only).
  const input = page.locator(`[data-testid="stMain"] input[role="combobox"][aria-label="${label}"]`);
  return (await input.count()) ? input.first().inputValue() : null;
}

async function chosen(group) {
  // The label of the selected option of a segmented control (null when it is not drawn).
  const radio = page.getByRole("radiogroup", { name: group, exact: true }).locator('[aria-checked="true"]');
  return (await radio.count()) ? (await radio.first().innerText()).trim() : null;
}

async function choose(group, label) {
  await page.getByRole("radiogroup", { name: group, exact: true }).getByRole("radio", { name: label, exact: true }).click();
  await settle();
}

async function pick(label, option) {
  await page.locator(`[data-testid="stMain"] input[role="combobox"][aria-label="${label}"]`).first().click();
  await page.getByRole("option", { name: option, exact: true }).click();
  await settle();
}

async function chartKeys() {
  // Streamlit marks a keyed element with the class st-key-<key>; chart keys name the figure's image.
  return page.evaluate(() => [...document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot')].map((plot) => {
    const holder = plot.closest('[class*="st-key-"]');
    return holder ? [...holder.classList].filter((c) => c.startsWith("st-key-")).join(" ") : "";
  }));
}

async function plotlySliders() {
  return page.locator(".js-plotly-plot g.slider-container").count();
}

async function layoutAgrees(step) {
  // The Face keypoints "Layout" control and the block-by-block figure must tell the same story:
  // "Every step (slider)" with a plotly slider, "Six steps" without one. Give a redraw some time.
  let shown, sliders;
  for (let tries = 0; tries < 40; tries++) {
    shown = await chosen("Layout");
    sliders = await plotlySliders();
    if ((shown === "Every step (slider)" && sliders > 0) || (shown === "Six steps" && sliders === 0)) return shown;
    await page.waitForTimeout(500);
  }
  throw new Error(`${step}: the Layout control shows ${JSON.stringify(shown)} but the figure has ${sliders} slider(s)`);
}

const baseName = (file) => path.basename(file);
const pickedName = (label) => (label || "").replace(/^\d+\.\s*/, "");

async function step(name, body, minimumFigures = 0) {
  try {
    await body();
    await expectNoException(name);
    const figures = await waitForFigures(name, minimumFigures);
    const file = await shot(name);
    log({ step: name, ok: true, figures, screenshot: file });
  } catch (error) {
    const file = await shot(`${name}_FAILED`).catch(() => null);
    log({ step: name, ok: false, error: String(error.message || error), screenshot: file });
    await browser.close();
    process.exit(1);
  }
}

const cp = plan.checkpoints;
await step("01_overview_gallery", async () => { await page.goto(plan.url); await settle(); await chooseCheckpoint(cp.crmn); }, 2);
await step("01b_figure_downloads", async () => {
  for (const [label, signature] of [[/^Image \(PNG\)$/, /^\x89PNG/], [/^Data \(CSV\)$/, /^[\w .]+,/]]) {
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: 90000 }),
      page.getByRole("button", { name: label }).first().click(),
    ]);
    const file = await download.path();
    const head = fs.readFileSync(file).subarray(0, 16).toString("latin1");
    if (!signature.test(head)) throw new Error(`${download.suggestedFilename()} starts with ${JSON.stringify(head)}`);
    log({ step: "download", ok: true, file: download.suggestedFilename(), bytes: fs.statSync(file).size });
  }
});
await step("02_overview_bad_upload", async () => {
  await imageSource("Upload");
  await upload(plan.bad_image);
  await page.locator('[data-testid="stMain"] [data-testid="stAlertContentError"]').first().waitFor();
});
await step("03_overview_upload", async () => {
  await page.getByRole("button", { name: /^Remove / }).first().click();
  await settle();
  await upload(plan.image);
  // On a loaded machine the rerun may start after settle() saw a quiet app: give the error
  // up to two minutes to go away before calling it a failure.
  try {
    await page.locator('[data-testid="stAlertContentError"]').first().waitFor({ state: "detached", timeout: 120000 });
  } catch {
    throw new Error("an error is still shown after a good upload");
  }
  await settle();
}, 2);
await step("04_lstm_memory", async () => { await imageSource("Gallery"); await openPage("LSTM memory"); }, 2);
await step("05_lstm_animation", async () => {
  await page.getByRole("tab", { name: "Animation" }).click();
  await settle();
}, 1);
await step("06_lstm_statistics", async () => {
  await page.getByRole("tab", { name: "Class statistics" }).click();
  await settle();
}, 1);
await step("07_attributions", async () => { await openPage("Attributions"); }, 2);
await step("08_renet_not_applicable", async () => {
  await openPage("ReNet sweeps");
  await page.getByText("does not apply").first().waitFor();
});
await step("09_renet_sweeps", async () => {
  const suggestion = page.getByRole("button", { name: `Use ${cp.renet}` });
  if (await suggestion.count()) { await suggestion.first().click(); await settle(); } else { await chooseCheckpoint(cp.renet); }
}, 3);
if (cp.rir) await step("10_rir_streams", async () => { await chooseCheckpoint(cp.rir); await openPage("RiR streams"); }, 2);
await step("11_face_keypoints", async () => { await chooseCheckpoint(cp.faces); await openPage("Face keypoints"); }, 2);
await step("12_overview_faces", async () => { await openPage("Overview"); }, 2);
await step("13_export", async () => {
  await openPage("Export");
  await page.getByRole("button", { name: "Prepare the files" }).click();
  await settle();
  await page.getByRole("button", { name: /Download crmn-viz|Download .*\.(pdf|png|svg)/ }).first().waitFor();
});

// State steps (issue 18): each fails if one of the fixed state bugs comes back.
if (plan.second_image && plan.truncated_image && plan.face_image && plan.gallery) {
  const uploadedNames = [plan.image, plan.second_image, plan.truncated_image, plan.face_image].map(baseName);
  await step("14_face_layout_after_upload", async () => {
    // Bug 2: after an upload the Layout control showed "Six steps" while the figure kept its slider.
    await chooseCheckpoint(cp.faces);
    await openPage("Face keypoints");
    await choose("Layout", "Every step (slider)");
    await waitForFigures("14_face_layout_after_upload", 2);
    if ((await layoutAgrees("before the upload")) !== "Every step (slider)") throw new Error("the slider layout was not taken");
    await imageSource("Upload");
    await removeUploads();
    await upload(plan.face_image);
    await waitForFigures("14_face_layout_after_upload", 2);
    const shown = await layoutAgrees("after the upload");
    // The other choice must take effect too (a stale value cannot be changed by clicking what is shown).
    await choose("Layout", shown === "Six steps" ? "Every step (slider)" : "Six steps");
    const changed = await layoutAgrees("after changing the layout");
    if (changed === shown) throw new Error(`the Layout control did not change from ${shown}`);
    log({ step: "face_layout", ok: true, after_upload: shown, after_click: changed });
  }, 2);
  await step("15_newest_upload_selected", async () => {
    // Bug 3: after a second upload the picker must select the newest file.
    await chooseCheckpoint(cp.renet);
    await openPage("ReNet sweeps");
    await imageSource("Upload");
    await removeUploads();
    await upload(plan.image);
    await upload(plan.second_image);
    const label = await pickerLabel("Image");
    if (pickedName(label) !== baseName(plan.second_image)) {
      throw new Error(`the picker shows ${JSON.stringify(label)}, not the newest upload ${baseName(plan.second_image)}`);
    }
  }, 3);
  await step("16_duplicate_upload_once", async () => {
    // Bug 4: the same file twice is one image, and the duplicate's message appears once.
    await upload(plan.image);
    const thumbnails = await page.locator('[data-testid="stSidebar"] [data-testid="stImage"] img').count();
    if (thumbnails !== 2) throw new Error(`${thumbnails} images in the sidebar after a duplicate upload, expected 2`);
    const messages = await page.getByText(/is the same file as/).count();
    if (messages !== 1) throw new Error(`the duplicate's message appears ${messages} times, expected once`);
    const label = await pickerLabel("Image");
    if (!uploadedNames.includes(pickedName(label))) throw new Error(`the picker shows ${JSON.stringify(label)}`);
  }, 3);
  const badName = baseName(plan.truncated_image);
  const alertsNaming = (where) => page.locator(`[data-testid="${where}"] [data-testid="stAlert"]`).filter({ hasText: badName });
  const noPageSaysWhy = async () => {
    const sidebar = await page.locator('[data-testid="stSidebar"]').innerText();
    if (/the page says why/i.test(sidebar)) throw new Error('the sidebar says "the page says why"');
  };
  await step("17_bad_upload_on_its_page", async () => {
    // Bug 5 (first half): the error shows in the main area of the page where the file was uploaded.
    await upload(plan.truncated_image);
    await alertsNaming("stMain").first().waitFor({ timeout: 30000 });
    const main = await alertsNaming("stMain").count();
    const side = await alertsNaming("stSidebar").count();
    if (main !== 1 || side !== 1) throw new Error(`${badName}'s error: ${main} in the page, ${side} in the sidebar (expected 1 and 1)`);
    await noPageSaysWhy();
  }, 3);
  await step("18_bad_upload_not_repeated", async () => {
    // Bug 5 (second half): another page does not repeat it; the sidebar still lists it.
    await openPage("Overview");
    const main = await alertsNaming("stMain").count();
    const side = await alertsNaming("stSidebar").count();
    if (main !== 0) throw new Error(`${badName}'s error is repeated on the Overview page`);
    if (side !== 1) throw new Error(`${badName}'s error is listed ${side} times in the sidebar, expected once`);
    await noPageSaysWhy();
  }, 1);
  const galleryNames = Object.values(plan.gallery).flat();
  const expectGalleryPicker = async (when) => {
    // Bug 1: the ReNet picker names a gallery image, and the charts show that image.
    const label = await pickerLabel("Image");
    const name = pickedName(label);
    if (label === null || !galleryNames.includes(name) || uploadedNames.includes(name)) {
      throw new Error(`${when}: the picker shows ${JSON.stringify(label)}, not a gallery image`);
    }
    const stem = name.replace(/\.[^.]+$/, "");
    const keys = await chartKeys();
    if (!keys.some((key) => key.includes(stem)) || keys.some((key) => uploadedNames.some((u) => key.includes(u.replace(/\.[^.]+$/, ""))))) {
      throw new Error(`${when}: the picker shows ${label} but the charts are ${keys.join(", ")}`);
    }
    return label;
  };
  await step("19_gallery_after_upload", async () => {
    // Switched on the ReNet page itself, with the second upload picked ...
    await openPage("ReNet sweeps");
    if (pickedName(await pickerLabel("Image")) !== baseName(plan.second_image)) await pick("Image", `2. ${baseName(plan.second_image)}`);
    await imageSource("Gallery");
    const onPage = await expectGalleryPicker("switched on the ReNet page");
    // ... and the other way round: upload, switch to Gallery elsewhere, then open ReNet sweeps.
    await imageSource("Upload");
    await upload(plan.image);
    await upload(plan.second_image);
    await openPage("Overview");
    await imageSource("Gallery");
    await openPage("ReNet sweeps");
    const elsewhere = await expectGalleryPicker("switched on the Overview page");
    log({ step: "gallery_picker", ok: true, on_page: onPage, elsewhere });
  }, 3);
}

if (problems.length) log({ step: "page_errors", ok: true, errors: problems });
await browser.close();
