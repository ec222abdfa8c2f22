"""Turn a job's output into safe HTML: Markdown rendered and sanitized, JSON as lists and tables."""

import json
from dataclasses import dataclass

import nh3
from django.core.cache import cache
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from jobs.models import Job

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
# No img: a model's output must not load anything from outside. Classes carry the highlighting.
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"class"},
    "pre": {"class"},
    "code": {"class"},
    "table": {"class"},
}
FORMATTER = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, _attrs) -> str:
    try:
        lexer = get_lexer_by_name(lang) if lang else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    # A block starting with <pre is used as it is: markdown-it wraps nothing around it.
    return f'<pre class="highlight"><code>{highlight(code, lexer, FORMATTER)}</code></pre>'


# html=False: raw HTML in the model's Markdown is shown as text, never passed through.
MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight})
MARKDOWN.enable("table").enable("strikethrough")


def sanitize(html: str) -> SafeString:
    """Keep only harmless tags and http(s)/mailto links, each with rel=noopener."""
    return mark_safe(
        nh3.clean(
            html,
            tags=ALLOWED_TAGS,
            attributes=ALLOWED_ATTRIBUTES,
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener noreferrer nofollow",
            strip_comments=True,
        )
    )


def render_markdown(text: str) -> SafeString:
    return sanitize(MARKDOWN.render(text))


def _label(key: str) -> str:
    return escape(str(key).replace("_", " ").strip().capitalize())


def _json_html(value, depth: int = 0) -> str:
    if isinstance(value, dict):
        if not value:
            return '<span class="muted">(empty)</span>'
        rows = "".join(
            f"<tr><th>{_label(key)}</th><td>{_json_html(item, depth + 1)}</td></tr>"
            for key, item in value.items()
        )
        return f'<table class="kv">{rows}</table>'
    if isinstance(value, list):
        if not value:
            return '<span class="muted">(none)</span>'
        if all(isinstance(item, dict) for item in value):
            keys = list(dict.fromkeys(key for item in value for key in item))
            head = "".join(f"<th>{_label(key)}</th>" for key in keys)
            body = "".join(
                "<tr>"
                + "".join(f"<td>{_json_html(item.get(key, ''), depth + 1)}</td>" for key in keys)
                + "</tr>"
                for item in value
            )
            return (
                f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            )
        return (
            "<ul>" + "".join(f"<li>{_json_html(item, depth + 1)}</li>" for item in value) + "</ul>"
        )
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if value is None:
        return '<span class="muted">—</span>'
    return escape(str(value)).replace("\n", "<br>")


def render_json(value) -> SafeString:
    """Render parsed JSON as headings, tables and lists; never as raw JSON."""
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            parts.append(f"<h3>{_label(key)}</h3>")
            parts.append(
                f"<p>{_json_html(item)}</p>"
                if not isinstance(item, (dict, list))
                else _json_html(item)
            )
        return sanitize("".join(parts))
    return sanitize(_json_html(value))


@dataclass(frozen=True)
class RenderedResult:
    html: SafeString
    source: str  # what the copy button copies and the download holds
    filename: str
    mimetype: str


def render_result(job: Job) -> RenderedResult:
    """Return the job's result as HTML, rendered once per version of the job and cached."""
    key = f"result:{job.public_id}:{job.updated_at.timestamp()}"
    return cache.get_or_set(key, lambda: _render_result(job), timeout=24 * 3600)


def _render_result(job: Job) -> RenderedResult:
    stem = f"{job.skill.slug}-{str(job.public_id)[:8]}"
    if job.output_json is not None:
        return RenderedResult(
            html=render_json(job.output_json),
            source=json.dumps(job.output_json, indent=2, ensure_ascii=False),
            filename=f"{stem}.json",
            mimetype="application/json",
        )
    return RenderedResult(
        html=render_markdown(job.output_text),
        source=job.output_text,
        filename=f"{stem}.md",
        mimetype="text/markdown",
    )
