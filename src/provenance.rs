//! Who and what a run is, as history records it (DESIGN.md §6): the actor, the project's git
//! commit and the CI run's URL, from GitHub Actions' or GitLab CI's variables, else the OS
//! user and the work tree's HEAD. Pure but for [`current`], which reads the environment and git.

use std::path::Path;

/// The CI system a run is in, and what it says about the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// `GitHub Actions`, `GitLab CI`, or `None` outside CI.
    pub ci: Option<&'static str>,
    pub actor: Option<String>,
    pub commit: Option<String>,
    pub run_url: Option<String>,
}

/// Provenance from environment variables (`env`) and, outside CI, the OS user (`user`, when
/// no variable names one) and the work tree's HEAD (`head`).
pub fn detect(
    env: impl Fn(&str) -> Option<String>,
    user: impl FnOnce() -> Option<String>,
    head: impl FnOnce() -> Option<String>,
) -> Provenance {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    if var("GITHUB_ACTIONS").as_deref() == Some("true") {
        let run_url = match (
            var("GITHUB_SERVER_URL"),
            var("GITHUB_REPOSITORY"),
            var("GITHUB_RUN_ID"),
        ) {
            (Some(server), Some(repo), Some(id)) => Some(format!(
                "{}/{repo}/actions/runs/{id}",
                server.trim_end_matches('/')
            )),
            _ => None,
        };
        return Provenance {
            ci: Some("GitHub Actions"),
            actor: var("GITHUB_ACTOR"),
            commit: var("GITHUB_SHA"),
            run_url,
        };
    }
    if var("GITLAB_CI").as_deref() == Some("true") {
        return Provenance {
            ci: Some("GitLab CI"),
            actor: var("GITLAB_USER_LOGIN"),
            commit: var("CI_COMMIT_SHA"),
            run_url: var("CI_JOB_URL"),
        };
    }
    Provenance {
        ci: None,
        actor: var("USER")
            .or_else(|| var("USERNAME"))
            .or_else(|| var("LOGNAME"))
            .or_else(user),
        commit: head(),
        run_url: None,
    }
}

/// This process's provenance; `project_dir`'s git HEAD outside CI (none when it is not a
/// checkout or git is missing).
pub fn current(project_dir: &Path) -> Provenance {
    detect(|k| std::env::var(k).ok(), os_user, || git_head(project_dir))
}

/// The login name of this process's user, from `/etc/passwd` (containers often set no `USER`).
#[cfg(unix)]
fn os_user() -> Option<String> {
    let uid = rustix::process::getuid().as_raw().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_owned())
    })
}

#[cfg(not(unix))]
fn os_user() -> Option<String> {
    None
}

/// The HEAD of the git work tree holding `dir`: read from the files, `git rev-parse` (with a
/// time limit) only when they say something unusual (see `store::who`).
fn git_head(dir: &Path) -> Option<String> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    crate::store::who::git_head(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn github_actions_gives_actor_sha_and_run_url() {
        let p = detect(
            env(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_ACTOR", "octocat"),
                ("GITHUB_SHA", "abc123"),
                ("GITHUB_SERVER_URL", "https://github.com/"),
                ("GITHUB_REPOSITORY", "org/app"),
                ("GITHUB_RUN_ID", "42"),
                ("USER", "runner"),
            ]),
            || panic!("no OS user in CI"),
            || panic!("no git in CI"),
        );
        assert_eq!(p.ci, Some("GitHub Actions"));
        assert_eq!(p.actor.as_deref(), Some("octocat"));
        assert_eq!(p.commit.as_deref(), Some("abc123"));
        assert_eq!(
            p.run_url.as_deref(),
            Some("https://github.com/org/app/actions/runs/42")
        );
    }

    #[test]
    fn gitlab_and_a_laptop() {
        let p = detect(
            env(&[
                ("GITLAB_CI", "true"),
                ("GITLAB_USER_LOGIN", "alice"),
                ("CI_COMMIT_SHA", "def"),
                ("CI_JOB_URL", "https://gitlab.example.com/g/p/-/jobs/7"),
            ]),
            || None,
            || None,
        );
        assert_eq!(
            (
                p.ci,
                p.actor.as_deref(),
                p.commit.as_deref(),
                p.run_url.as_deref()
            ),
            (
                Some("GitLab CI"),
                Some("alice"),
                Some("def"),
                Some("https://gitlab.example.com/g/p/-/jobs/7")
            )
        );
        let p = detect(
            env(&[("USER", "bob"), ("GITHUB_ACTIONS", "false")]),
            || Some("root".into()),
            || Some("fff".into()),
        );
        assert_eq!(p.ci, None);
        assert_eq!(p.actor.as_deref(), Some("bob"));
        assert_eq!(p.commit.as_deref(), Some("fff"));
        assert_eq!(p.run_url, None);
        let p = detect(env(&[]), || Some("root".into()), || None);
        assert_eq!((p.actor.as_deref(), p.commit), (Some("root"), None));
    }
}
