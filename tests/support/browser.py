"""Debian's Chromium for the browser tests and benchmarks (Playwright cannot download browsers on the CI
machines), and where the web app's frame pane puts the frame's pixels."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

FRAME_GEOMETRY_JS = """() => {
  const img = document.querySelector('#sam2-frame img.sam2-image');
  const r = img.getBoundingClientRect();
  const s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
  return {left: r.left + (r.width - img.naturalWidth * s) / 2,
          top: r.top + (r.height - img.naturalHeight * s) / 2,
          scale: s, w: img.naturalWidth, h: img.naturalHeight};
}"""
"""The content box of the web app's frame image (object-fit: contain, as the frame script maps clicks): its
page position, its scale (page pixels per rendered image pixel) and the rendered image's size."""
