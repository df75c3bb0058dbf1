//! The built-in web UI: static assets embedded in the binary (`serve/ui/`), served at `/` and
//! `/ui/*`. The UI is plain JavaScript reading the JSON API (`docs/api.md`); nothing here knows
//! about the data, so the assets can be served before anything else is ready.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// Every embedded asset: its path under `/ui/`, its content type and its bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("index.html", HTML, include_bytes!("ui/index.html")),
    ("app.js", JS, include_bytes!("ui/app.js")),
    ("style.css", CSS, include_bytes!("ui/style.css")),
    (
        "vendor/uPlot.iife.min.js",
        JS,
        include_bytes!("ui/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        CSS,
        include_bytes!("ui/vendor/uPlot.min.css"),
    ),
    (
        "vendor/uPlot.LICENSE",
        TEXT,
        include_bytes!("ui/vendor/uPlot.LICENSE"),
    ),
];

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// What the page may load: only its own assets and API (no inline script, no other origin).
/// uPlot sets element styles from script, which `style-src` does not govern.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// The asset at request path `path` (`/` and `/index.html` are the page, `/ui/app.js` or
/// `app.js` an asset): its content type and bytes, or `None`.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_start_matches('/');
    let path = match path {
        "" | "index.html" => "index.html",
        // Only the named files: `..` or any other path matches nothing.
        other => other.strip_prefix("ui/").unwrap_or(other),
    };
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

/// The axum handler of `GET /` and `GET /ui/{*path}`: the asset, or a JSON 404 as the API's.
pub async fn handler(uri: Uri) -> Response {
    match asset(uri.path()) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                // The assets change with the binary only; revalidating is cheap on loopback.
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            ],
            bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": format!("no such file: {}", uri.path())})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_page() {
        for path in ["/", "", "/index.html", "/?x=1"] {
            let (content_type, bytes) = asset(path).unwrap();
            assert_eq!(content_type, HTML, "{path}");
            let text = std::str::from_utf8(bytes).unwrap();
            assert!(text.starts_with("<!doctype html>"), "{path}");
        }
    }

    #[test]
    fn assets_resolve_with_or_without_the_ui_prefix() {
        assert_eq!(asset("/ui/app.js").unwrap().0, JS);
        assert_eq!(asset("app.js").unwrap().0, JS);
        assert_eq!(asset("/ui/style.css").unwrap().0, CSS);
        assert_eq!(asset("/ui/vendor/uPlot.iife.min.js").unwrap().0, JS);
        assert_eq!(asset("/ui/vendor/uPlot.min.css").unwrap().0, CSS);
        assert_eq!(asset("/ui/vendor/uPlot.LICENSE").unwrap().0, TEXT);
    }

    #[test]
    fn unknown_and_escaping_paths_are_not_found() {
        for path in [
            "/ui/",
            "/ui/nope.js",
            "/ui/../Cargo.toml",
            "/ui/vendor/../app.js",
            "/api/overview",
            "/ui/ui/app.js",
        ] {
            assert!(asset(path).is_none(), "{path}");
        }
    }

    /// Every asset the page links is embedded, so the page never asks for a missing file.
    #[test]
    fn the_page_links_only_embedded_assets() {
        let page = std::str::from_utf8(asset("/").unwrap().1).unwrap();
        let mut linked = 0;
        for part in page.split(['"', '\'']) {
            if part.starts_with("/ui/") {
                assert!(asset(part).is_some(), "index.html links {part}");
                linked += 1;
            }
        }
        assert_eq!(
            linked, 4,
            "index.html links app.js, style.css and uPlot's two files"
        );
    }

    /// The UI builds the DOM from data with textContent: a stray innerHTML would let a
    /// container or command name inject markup.
    #[test]
    fn the_script_never_writes_markup_from_strings() {
        let script = std::str::from_utf8(asset("/ui/app.js").unwrap().1).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!script.contains(sink), "app.js uses {sink}");
        }
    }
}
