"""The campaign page: one self-contained HTML file from a campaign summary.

The markup is ``templates/campaign.html.j2`` and the style sheet ``templates/campaign.css``,
rendered by the report's Jinja2 environment (autoescape on, strict undefined): every string
from the input (paths, account names, flags) is escaped; the only markup inserted as is,
the style sheet, is the package's own, and a Content-Security-Policy admits it by hash.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import IO, Any

from markupsafe import Markup

from ganscreen._records import one_line
from ganscreen.checks import flags as registered_flags

log = logging.getLogger("ganscreen")

TEMPLATE = "campaign.html.j2"
STYLE = "campaign.css"
THUMB_SIDE = 128
MAX_THUMBS_PER_CLUSTER = 24
MAX_LINKS_SHOWN = 40


def _thumb(path: str) -> str | None:
    from ganscreen.evidence import encode, fit
    from ganscreen.images import load_image

    try:
        rgb = fit(load_image(path).rgb, THUMB_SIDE)
        data = base64.b64encode(encode(rgb, "JPEG", quality=80)).decode("ascii")
    except Exception as exc:  # a photo that cannot be shown gets the "no image" placeholder
        log.warning("campaign page: no thumbnail for %s: %s", path, one_line(exc))
        return None
    return f"data:image/jpeg;base64,{data}"


def render_html(summary: Mapping[str, Any], out: IO[str], *, thumbnails: bool = True) -> None:
    """A self-contained page: statistics in plain words, accounts, and cluster strips."""
    from ganscreen.html_report import _csp_hash, _static, environment

    style = _static(STYLE)
    csp = (f"default-src 'none'; img-src data:; style-src '{_csp_hash(style)}'; "
           "base-uri 'none'; form-action 'none'")
    photos = summary["photos"]
    strips = []
    for cluster in summary["clusters"]:
        members = cluster["members"]
        shown = members[:MAX_THUMBS_PER_CLUSTER]
        strips.append({
            "cluster": cluster,
            "figures": [{"photo": photos[m], "thumb": _thumb(photos[m]["path"]) if thumbnails else None,
                       "name": photos[m]["path"].rstrip("/").rsplit("/", 1)[-1]} for m in shown],
            "more": len(members) - len(shown),
            "links": [_link_text(lk) for lk in cluster["links"][:MAX_LINKS_SHOWN]],
        })
    context = {"s": summary, "strips": strips, "style": Markup(style), "csp": csp,
               "flag_descriptions": {name: flag.description for name, flag in registered_flags().items()},
               "title": f"ganscreen campaign: {summary['totals']['files']} photos"}
    # Chunk by chunk, as the template renders: a report of thousands of cards never sits
    # in memory whole (TemplateStream.dump would too, but its types want bytes or a path).
    for chunk in environment().get_template(TEMPLATE).generate(context):
        out.write(chunk)


def _link_text(link: Mapping[str, Any]) -> str:
    mirrored = ", mirrored" if link["mirrored"] else ""
    if link["kind"] == "keypoints":  # distance: None for a keypoint-vote candidate
        return (f"#{link['a']} ↔ #{link['b']}: {link['inliers']} matching keypoints, pixel correlation "
                f"{link['correlation']:.2f}{mirrored}")
    return f"#{link['a']} ↔ #{link['b']}: {link['kind']} hash, {link['distance']} bits{mirrored}"
