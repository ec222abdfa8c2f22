from jobs.rendering import render_json, render_markdown


def test_markdown_renders_headings_lists_and_tables():
    html = render_markdown("# Title\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert "<h1>Title</h1>" in html
    assert "<li>one</li>" in html
    assert "<table>" in html and "<td>1</td>" in html


def test_code_blocks_are_highlighted():
    html = render_markdown("```python\ndef f():\n    return 1\n```\n")
    assert '<pre class="highlight">' in html
    assert '<span class="k">def</span>' in html


def test_raw_html_is_shown_as_text_not_markup():
    html = render_markdown("<b onclick=x>bold</b>")
    assert "<b" not in html
    assert "&lt;b onclick=x&gt;" in html


def test_json_renders_as_headings_tables_and_lists_never_raw():
    html = render_json(
        {"vendor": "ACME", "items": [{"name": "Widget", "qty": 2}], "tags": ["a", "b"], "ok": True}
    )
    assert "<h3>Vendor</h3>" in html
    assert "<th>Name</th>" in html and "<td>Widget</td>" in html
    assert "<li>a</li>" in html
    assert "Yes" in html
    assert "{" not in html and '"vendor"' not in html


def test_json_strings_are_escaped():
    html = render_json({"note": "<script>alert(1)</script>"})
    assert "<script" not in html
    assert "&lt;script&gt;" in html
