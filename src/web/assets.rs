//! Static assets, embedded in the binary: the stylesheet, the session
//! page's script and the vendored asciinema-player (its licence and
//! provenance in `assets/vendor/asciinema-player/`). They hold no session
//! data, so they are served to anyone; only these names are served.

use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::html::STYLE;
use super::routes::plain;

const PLAYER_JS: &[u8] =
    include_bytes!("../../assets/vendor/asciinema-player/asciinema-player.min.js");
const PLAYER_CSS: &[u8] =
    include_bytes!("../../assets/vendor/asciinema-player/asciinema-player.css");
const SESSION_JS: &[u8] = include_bytes!("../../assets/web/session.js");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `/assets/NAME`.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, content_type): (&'static [u8], &'static str) = match name.as_str() {
        "asciinema-player.min.js" => (PLAYER_JS, JAVASCRIPT),
        "asciinema-player.css" => (PLAYER_CSS, CSS),
        "session.js" => (SESSION_JS, JAVASCRIPT),
        _ => return plain(StatusCode::NOT_FOUND, "not found"),
    };
    with_type(body, content_type)
}

/// `/style.css`.
pub async fn style() -> Response {
    with_type(STYLE.as_bytes(), CSS)
}

fn with_type(body: &'static [u8], content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
