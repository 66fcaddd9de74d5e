"""What the layout and accessibility tests measure in the browser: content past the viewport's edge,
chart labels drawn over each other (read from ECharts' own scene, canvas or not), and axe-core's
serious and critical findings."""

import itertools
import math
from typing import Any

from tests.support.services import AXE_JS

# Elements whose right edge lies past the viewport, unless a scrolling ancestor holds them on purpose
# (Quasar's layout clips horizontal overflow, so document.scrollWidth alone would never notice it).
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth, found = [];
  for (const el of document.querySelectorAll('main *, header *, footer *')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || box.right <= width + 1) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || el.closest('.q-layout--prevent-focus, .ef-skip')) continue;
    let parent = el.parentElement, held = false;
    for (; parent && parent !== document.body; parent = parent.parentElement) {
      const overflow = getComputedStyle(parent).overflowX;
      const scrolls = overflow === 'auto' || overflow === 'scroll';
      if (scrolls && parent.getBoundingClientRect().right <= width + 1) { held = true; break; }
    }
    const name = el.tagName.toLowerCase() + '.' + String(el.className.baseVal ?? el.className).slice(0, 60);
    if (!held) found.push(`${name} ends at ${Math.round(box.right)} px`);
  }
  return {width, scrollWidth: document.documentElement.scrollWidth, found: found.slice(0, 10)};
}"""

# Every line of text ECharts drew (axis labels and names, legend, title, mark labels) with its box on
# the chart, from zrender's scene (what hideOverlap hid is not in it). The box is zrender's own, one em
# tall: zrender takes a line's height from the width of a CJK glyph (1 em where the font has one), which
# a machine without CJK fonts draws 4 px wide, so the em comes from the font size here.
LABELS_JS = """(el) => {
  const chart = getElement(el).chart;
  const boxes = [], owners = new Map();
  for (const item of chart.getZr().storage.getDisplayList(true)) {
    if ((item.type !== 'tspan' && item.type !== 'text') || item.invisible || !item.style) continue;
    const text = String(item.style.text ?? '');
    if (!text.trim()) continue;
    const owner = item.parent && item.parent.type === 'text' ? item.parent : item;
    if (!owners.has(owner)) owners.set(owner, owners.size);
    const size = parseFloat((/([0-9.]+)px/.exec(item.style.font || '') || [0, 12])[1]);
    const local = item.getBoundingRect(), height = size, base = item.style.textBaseline;
    const shift = base === 'middle' ? height / 2 : (base === 'bottom' || base === 'alphabetic') ? height : 0;
    const top = (item.style.y || 0) - shift, m = item.getComputedTransform() || [1, 0, 0, 1, 0, 0];
    const right = local.x + local.width, bottom = top + height;
    const corners = [[local.x, top], [right, top], [right, bottom], [local.x, bottom]]
      .map(([x, y]) => [m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]]);
    boxes.push({text, owner: owners.get(owner), corners});
  }
  return {width: el.clientWidth, height: el.clientHeight, boxes};
}"""


AXE_RUN_JS = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5)}));
}"""


def _separated(a: list[list[float]], b: list[list[float]], slack: float) -> bool:
    """Whether two convex quadrilaterals (a text's box, rotated or not) are apart by `slack` px along
    one of their edges' normals (the separating axis test)."""
    for quad in (a, b):
        for (x1, y1), (x2, y2) in itertools.pairwise([*quad, quad[0]]):
            length = math.hypot(x2 - x1, y2 - y1) or 1.0
            nx, ny = (y1 - y2) / length, (x2 - x1) / length
            pa = [nx * x + ny * y for x, y in a]
            pb = [nx * x + ny * y for x, y in b]
            if min(max(pa), max(pb)) - max(min(pa), min(pb)) <= slack:
                return True
    return False


def overlapping_labels(boxes: list[dict[str, Any]], slack: float = 1.0) -> list[str]:
    """Pairs of chart texts (of different labels) drawn over each other by more than `slack` px."""
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if a["owner"] != b["owner"] and not _separated(a["corners"], b["corners"], slack):
                found.append(f"{a['text']!r} over {b['text']!r}")
    return found


def cut_labels(probe: dict[str, Any], slack: float = 2.0) -> list[str]:
    """Chart texts that stick out of the chart's own box (cut off by its edge)."""
    width, height = probe["width"] + slack, probe["height"] + slack
    return [
        repr(b["text"])
        for b in probe["boxes"]
        if any(x < -slack or y < -slack or x > width or y > height for x, y in b["corners"])
    ]


def chart_problems(page: Any) -> list[str]:
    """Overlapping or cut-off texts in every chart on the page (each drawn and measured in place)."""
    problems = []
    for index, chart in enumerate(page.locator(".nicegui-echart").all()):
        chart.scroll_into_view_if_needed()
        page.wait_for_function("(el) => getElement(el)?.chart?.getZr()", arg=chart.element_handle())
        probe = chart.evaluate(LABELS_JS)
        if len(probe["boxes"]) < 3:  # a title and axis labels at least: else this check sees nothing
            problems.append(f"chart {index}: only {len(probe['boxes'])} texts read from its scene")
        problems += [f"chart {index}: {p}" for p in overlapping_labels(probe["boxes"])]
        problems += [f"chart {index}: {p} cut off" for p in cut_labels(probe)]
    return problems


NO_MOTION_CSS = "*, *::before, *::after { transition: none !important; animation: none !important; }"


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now, once transitions have
    ended (text fading in is measured at its momentary, lower contrast)."""
    page.add_style_tag(content=NO_MOTION_CSS)
    page.wait_for_timeout(100)
    page.add_script_tag(path=str(AXE_JS))
    found: list[dict[str, Any]] = page.evaluate(AXE_RUN_JS)
    return found
