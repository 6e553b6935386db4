"""Shared inline CSS of the HTML pages (no external resources)."""

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr.clean td{background:#fbfbea}
.latent{border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:10px 0}
.latent.safe{border-left:6px solid #27ae60}.latent.unsafe{border-left:6px solid #c0392b}
.meta{color:#555;font-size:13px}.why{color:#a04000;font-size:13px}
.ctx{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;margin:2px 0;white-space:pre-wrap;
     word-break:break-word}
mark{background:#ffe066;font-weight:bold;padding:0 1px}
.act{color:#666;display:inline-block;min-width:52px}
.expl{font-style:italic}.kv td:first-child{font-weight:bold}
img{max-width:100%;border:1px solid #eee}.plots{display:flex;flex-wrap:wrap;gap:12px}
"""
