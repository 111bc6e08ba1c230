//! Config text for static routes: ringway's `[[routes]]` entries ([`StaticRoute`]) and the
//! nginx locations that do the same ([`nginx_static_location`]), so a test states a route
//! once and both proxies get it.

use std::fmt::Write as _;
use std::path::Path;

use crate::uwsgi::Uwsgi;

/// One static `[[routes]]` entry of ringway's config file.
#[derive(Debug, Clone)]
pub struct StaticRoute {
    path: String,
    root: String,
    extra: Vec<(String, String)>,
}

impl StaticRoute {
    /// `path = PATH`, `static = ROOT`.
    pub fn new(path: &str, root: &Path) -> StaticRoute {
        StaticRoute {
            path: path.to_owned(),
            root: root.display().to_string(),
            extra: Vec::new(),
        }
    }

    /// Adds `key = value`, the value in TOML already (`"30d"` with its quotes, `true`, ...).
    pub fn set(mut self, key: &str, toml_value: &str) -> StaticRoute {
        self.extra.push((key.to_owned(), toml_value.to_owned()));
        self
    }

    /// `expires = "DUR"`.
    pub fn expires(self, duration: &str) -> StaticRoute {
        self.set("expires", &toml_string(duration))
    }

    /// `immutable = true`.
    pub fn immutable(self) -> StaticRoute {
        self.set("immutable", "true")
    }

    /// `index = "NAME"`.
    pub fn index(self, name: &str) -> StaticRoute {
        self.set("index", &toml_string(name))
    }

    /// `precompressed = [...]`, in order of preference.
    pub fn precompressed(self, codings: &[&str]) -> StaticRoute {
        let list: Vec<String> = codings.iter().map(|c| toml_string(c)).collect();
        self.set("precompressed", &format!("[{}]", list.join(", ")))
    }

    /// `fallback = "GROUP"`.
    pub fn fallback(self, group: &str) -> StaticRoute {
        self.set("fallback", &toml_string(group))
    }

    /// `internal = true`.
    pub fn internal(self) -> StaticRoute {
        self.set("internal", "true")
    }

    /// `dotfiles = true`.
    pub fn dotfiles(self) -> StaticRoute {
        self.set("dotfiles", "true")
    }

    /// The `[[routes]]` table.
    pub fn toml(&self) -> String {
        let mut text = format!(
            "\n[[routes]]\npath = {}\nstatic = {}\n",
            toml_string(&self.path),
            toml_string(&self.root)
        );
        for (key, value) in &self.extra {
            let _ = writeln!(text, "{key} = {value}");
        }
        text
    }
}

/// `[upstreams.NAME]` with `uwsgi` as its one server, and the route `/` to it: the app
/// behind every static config (fallbacks, X-Accel-Redirect, paths no static route serves).
pub fn app_group(name: &str, uwsgi: &Uwsgi) -> String {
    format!(
        "[upstreams.{name}]\nservers = [{}]\n\n[[routes]]\npath = \"/\"\nupstream = {}\n",
        toml_string(&uwsgi.upstream()),
        toml_string(name)
    )
}

/// A full config: the app group and route `/`, then `routes`.
pub fn config_with(uwsgi: &Uwsgi, routes: &[StaticRoute]) -> String {
    let mut text = app_group("app", uwsgi);
    for route in routes {
        text.push_str(&route.toml());
    }
    text
}

/// A TOML basic string.
pub fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// nginx's side of a static route at `prefix` (which ends with `/`) on `root`: `alias`,
/// the MIME types (the harness's nginx.conf has none: everything would be text/plain),
/// `index index.html`, and `directives` (say `expires 30d; gzip_static on;`).
pub fn nginx_static_location(prefix: &str, root: &Path, directives: &str) -> String {
    format!(
        "location {prefix} {{
            alias {}/;
            include /etc/nginx/mime.types;
            default_type application/octet-stream;
            index index.html;
            {directives}
        }}",
        root.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_render_as_toml() {
        let route = StaticRoute::new("/static/", Path::new("/srv/a \"b\""))
            .expires("30d")
            .immutable()
            .precompressed(&["br", "gzip"]);
        assert_eq!(
            route.toml(),
            "\n[[routes]]\npath = \"/static/\"\nstatic = \"/srv/a \\\"b\\\"\"\n\
             expires = \"30d\"\nimmutable = true\nprecompressed = [\"br\", \"gzip\"]\n"
        );
    }
}
