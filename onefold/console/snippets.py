"""Ready-to-paste client configuration for a source (pure): analytics.js, Python, Node and curl."""

from __future__ import annotations

from urllib.parse import urlsplit


def snippets(base_url: str, write_key: str) -> dict[str, str]:
    parts = urlsplit(base_url)
    host, scheme = parts.netloc, parts.scheme or "http"
    base = f"{scheme}://{host}"
    return {
        "analytics.js": (
            'import { AnalyticsBrowser } from "@segment/analytics-next";\n\n'
            "export const analytics = AnalyticsBrowser.load(\n"
            f'  {{ writeKey: "{write_key}",\n'
            f'    cdnSettings: {{ integrations: {{ "Segment.io": {{ apiKey: "{write_key}" }} }} }} }},\n'
            f'  {{ integrations: {{ "Segment.io": {{ apiHost: "{host}/v1", protocol: "{scheme}" }} }} }},\n'
            ");\n"
            'analytics.track("Signed Up", { plan: "pro" });'
        ),
        "Python": (
            "from segment import analytics  # pip install segment-analytics-python\n\n"
            f'analytics.write_key = "{write_key}"\n'
            f'analytics.host = "{base}"\n'
            'analytics.identify("user-42", {"email": "ann@example.com"})\n'
            'analytics.track("user-42", "Signed Up", {"plan": "pro"})\n'
            "analytics.flush()"
        ),
        "Node": (
            'import { Analytics } from "@segment/analytics-node";  // npm install @segment/analytics-node\n\n'
            f'const analytics = new Analytics({{ writeKey: "{write_key}", host: "{base}" }});\n'
            'analytics.track({ userId: "user-42", event: "Signed Up", properties: { plan: "pro" } });\n'
            "await analytics.closeAndFlush();"
        ),
        "curl": (
            f"curl -u {write_key}: {base}/v1/track -H 'Content-Type: application/json' \\\n"
            '  -d \'{"userId": "user-42", "event": "Signed Up", "properties": {"plan": "pro"}}\''
        ),
    }
