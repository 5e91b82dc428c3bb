//! Just enough of the Maven repository layout to find and download the model artifact.

use anyhow::{bail, Context as _};

use crate::fetch::{fetch, FetchError};
use crate::GeneratorUnavailable;

/// Maven Central, the default repository.
pub const MAVEN_CENTRAL: &str = "https://repo1.maven.org/maven2";

/// An ordered list of Maven repositories (base URLs or directories).
#[derive(Debug, Clone)]
pub struct Repositories {
    urls: Vec<String>,
}

impl Repositories {
    /// The given repositories, or Maven Central when the list is empty.
    pub fn new(urls: &[String]) -> Self {
        let urls = if urls.is_empty() {
            vec![MAVEN_CENTRAL.to_string()]
        } else {
            urls.iter()
                .map(|url| url.trim_end_matches('/').to_string())
                .collect()
        };
        Self { urls }
    }

    /// The repository URLs, in resolution order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// True when these are the defaults (Maven Central only).
    pub fn is_default(&self) -> bool {
        self.urls == [MAVEN_CENTRAL]
    }

    /// The newest version listed in `maven-metadata.xml` of `group:artifact`, and the
    /// repository that listed it.
    pub fn newest_version(&self, group: &str, artifact: &str) -> anyhow::Result<(String, String)> {
        let mut unreachable = Vec::new();
        for repo in &self.urls {
            let url = format!("{repo}/{}/{artifact}/maven-metadata.xml", group_path(group));
            match fetch(&url) {
                Ok(bytes) => {
                    let text = String::from_utf8(bytes)
                        .with_context(|| format!("{url} is not UTF-8 text"))?;
                    let metadata = Metadata::parse(&text);
                    let newest = metadata
                        .release
                        .or_else(|| metadata.versions.last().cloned())
                        .with_context(|| format!("{url} lists no versions"))?;
                    return Ok((newest, repo.clone()));
                }
                Err(FetchError::NotFound { .. }) => continue,
                Err(err) => unreachable.push(anyhow::Error::new(err)),
            }
        }
        self.not_available(&format!("{group}:{artifact}"), unreachable)
    }

    /// All versions of `group:artifact` listed by the first repository that knows it (empty if
    /// none does). Used to make "unknown version" errors actionable.
    pub fn listed_versions(&self, group: &str, artifact: &str) -> Vec<String> {
        self.urls
            .iter()
            .find_map(|repo| {
                let url = format!("{repo}/{}/{artifact}/maven-metadata.xml", group_path(group));
                let text = String::from_utf8(fetch(&url).ok()?).ok()?;
                Some(Metadata::parse(&text).versions)
            })
            .unwrap_or_default()
    }

    /// Downloads `group:artifact:version` as a jar; returns its bytes and the repository URL.
    pub fn download_jar(
        &self,
        group: &str,
        artifact: &str,
        version: &str,
    ) -> anyhow::Result<(Vec<u8>, String)> {
        let mut unreachable = Vec::new();
        for repo in &self.urls {
            let url = format!(
                "{repo}/{}/{artifact}/{version}/{artifact}-{version}.jar",
                group_path(group)
            );
            match fetch(&url) {
                Ok(bytes) => return Ok((bytes, repo.clone())),
                Err(FetchError::NotFound { .. }) => continue,
                Err(err) => unreachable.push(anyhow::Error::new(err)),
            }
        }
        if unreachable.is_empty() {
            let listed = self.listed_versions(group, artifact);
            let hint = if listed.is_empty() {
                String::new()
            } else {
                format!("; versions available: {}", listed.join(", "))
            };
            bail!(
                "unknown model version {version}: {group}:{artifact}:{version} is not in {}{hint}",
                self.urls.join(", ")
            );
        }
        self.not_available(&format!("{group}:{artifact}:{version}"), unreachable)
    }

    fn not_available<T>(&self, what: &str, unreachable: Vec<anyhow::Error>) -> anyhow::Result<T> {
        if let Some(first) = unreachable.into_iter().next() {
            return Err(first.context(GeneratorUnavailable {
                message: format!(
                    "cannot reach the Maven repository to download {what}; check the network \
                     (proxy settings) or pass --maven-repo with a reachable mirror, or use \
                     --model-file/--model-url"
                ),
            }));
        }
        Err(anyhow::Error::new(GeneratorUnavailable {
            message: format!(
                "{what} is not published in {}; pass --maven-repo with a repository that has it, \
                 or use --model-file/--model-url",
                self.urls.join(", ")
            ),
        }))
    }
}

/// `software.amazon.api.models` → `software/amazon/api/models`.
pub fn group_path(group: &str) -> String {
    group.replace('.', "/")
}

/// The parts of `maven-metadata.xml` we use.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `<release>`, when present.
    pub release: Option<String>,
    /// Every `<version>`, in document order (Maven lists them oldest first).
    pub versions: Vec<String>,
}

impl Metadata {
    /// Parses the few elements we need. The format is fixed and simple enough that an XML
    /// parser dependency would buy nothing.
    pub fn parse(xml: &str) -> Self {
        Self {
            release: elements(xml, "release").next().map(str::to_string),
            versions: elements(xml, "version").map(str::to_string).collect(),
        }
    }
}

fn elements<'a>(xml: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let value = rest[start..start + len].trim();
        rest = &rest[start + len + close.len()..];
        Some(value)
    })
    .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_and_versions() {
        let xml = "<metadata><versioning><latest>1.0.3</latest><release>1.0.3</release>\
                   <versions><version>1.0.0</version><version>1.0.3</version></versions>\
                   </versioning></metadata>";
        let metadata = Metadata::parse(xml);
        assert_eq!(metadata.release.as_deref(), Some("1.0.3"));
        assert_eq!(metadata.versions, ["1.0.0", "1.0.3"]);
    }

    #[test]
    fn missing_elements_parse_as_empty() {
        assert_eq!(Metadata::parse("<metadata/>"), Metadata::default());
        assert_eq!(Metadata::parse("<release></release>").release, None);
    }

    #[test]
    fn group_ids_become_paths() {
        assert_eq!(
            group_path("software.amazon.api.models"),
            "software/amazon/api/models"
        );
    }
}
