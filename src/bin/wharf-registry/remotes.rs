//! Remote registries as `--config` names them (replication destinations, pull-through
//! upstreams): a URL, a user with the environment variable holding the password (so the
//! file holds no secret), and a CA to trust.

/// Where a rule's remote is and how to log in, as the file writes it.
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
pub(crate) struct RemoteFields<'a> {
    pub(crate) url: &'a str,
    pub(crate) user: Option<&'a str>,
    /// The environment variable holding the password.
    pub(crate) password_env: Option<&'a str>,
    /// A PEM file of a CA to trust for the remote.
    pub(crate) ca_cert: Option<&'a str>,
}

#[cfg(feature = "remote")]
impl RemoteFields<'_> {
    /// The client for the remote; `what` names the rule in messages.
    pub(crate) fn connect(&self, what: &str) -> Result<wharf::remote::RemoteRegistry, String> {
        use wharf::remote::{Credentials, RemoteRegistry};

        let credentials = match (self.user, self.password_env) {
            (Some(user), Some(variable)) => Some(Credentials {
                user: user.to_owned(),
                password: std::env::var(variable)
                    .map_err(|_| format!("{what}: environment variable {variable} is not set"))?,
            }),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "{what}: give both user and password_env, or neither"
                ));
            }
        };
        let ca = match self.ca_cert {
            Some(path) => Some(std::fs::read(path).map_err(|e| format!("{what}: {path}: {e}"))?),
            None => None,
        };
        RemoteRegistry::new(self.url, credentials, ca.as_deref())
            .map_err(|e| format!("{what}: {}", e.message()))
    }
}
