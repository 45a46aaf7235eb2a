//! The cluster's ServiceAccount token issuer, as the token endpoint sees it: its `issuer` and
//! signing keys, read through the API server (`/.well-known/openid-configuration`,
//! `/openid/v1/jwks`: the chart grants `get` on exactly these non-resource URLs) and cached; a
//! token whose `kid` is unknown refreshes them, at most once per [`MIN_REFRESH`], and they are
//! refreshed anyway when older than [`MAX_AGE`] (a key the cluster retired stops verifying).
//! And the TokenReview that asks the API server whether a token is still good (its
//! ServiceAccount and Pod exist with the UIDs it names): `tokenreviews create`.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::{Api, api::PostParams};

use super::authn::assertion::{KeySet, key_set};

/// Unknown `kid`s refresh the keys at most this often.
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
/// Keys older than this are refreshed before use.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// The issuer and its keys at one fetch.
pub struct IssuerKeys {
    pub issuer: String,
    pub keys: KeySet,
    fetched: Instant,
}

/// Reading the issuer failed.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("reading {path} from the API server: {source}")]
    Fetch {
        path: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("{path} from the API server is not valid: {source}")]
    Parse {
        path: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the keys were refreshed less than {MIN_REFRESH:?} ago")]
    TooSoon,
}

#[derive(serde::Deserialize)]
struct Discovery {
    issuer: String,
}

const DISCOVERY: &str = "/.well-known/openid-configuration";
const JWKS: &str = "/openid/v1/jwks";

/// The cached issuer of one cluster.
pub struct SaIssuer {
    client: kube::Client,
    current: RwLock<Option<Arc<IssuerKeys>>>,
    /// One refresh at a time; holds when the last one started.
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl SaIssuer {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Arc<IssuerKeys>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// The issuer's keys, refreshed first when they do not hold `kid` (rate-limited) or are
    /// older than [`MAX_AGE`]. A failed refresh keeps the keys there were.
    pub async fn keys_for(&self, kid: &str) -> Result<Arc<IssuerKeys>, IssuerError> {
        if let Some(keys) = self.cached()
            && keys.keys.contains_key(kid)
            && keys.fetched.elapsed() < MAX_AGE
        {
            return Ok(keys);
        }
        let mut last = self.refresh.lock().await;
        // Another request may have refreshed while this one waited.
        if let Some(keys) = self.cached()
            && keys.keys.contains_key(kid)
            && keys.fetched.elapsed() < MAX_AGE
        {
            return Ok(keys);
        }
        if last.is_some_and(|t| t.elapsed() < MIN_REFRESH) {
            return self.cached().ok_or(IssuerError::TooSoon);
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                if let Ok(mut current) = self.current.write() {
                    *current = Some(keys.clone());
                }
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh the ServiceAccount issuer's keys");
                self.cached().ok_or(e)
            }
        }
    }

    async fn get(&self, path: &'static str) -> Result<String, IssuerError> {
        let request =
            http::Request::get(path)
                .body(Vec::new())
                .map_err(|e| IssuerError::Fetch {
                    path,
                    source: kube::Error::HttpError(e),
                })?;
        self.client
            .request_text(request)
            .await
            .map_err(|source| IssuerError::Fetch { path, source })
    }

    async fn fetch(&self) -> Result<IssuerKeys, IssuerError> {
        let discovery: Discovery =
            serde_json::from_str(&self.get(DISCOVERY).await?).map_err(|source| {
                IssuerError::Parse {
                    path: DISCOVERY,
                    source,
                }
            })?;
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&self.get(JWKS).await?)
            .map_err(|source| IssuerError::Parse { path: JWKS, source })?;
        Ok(IssuerKeys {
            issuer: discovery.issuer,
            keys: key_set(&jwks),
            fetched: Instant::now(),
        })
    }

    /// Asks the API server whether `token` (for `audience`) authenticates, and as whom: the
    /// user name and UID it maps to (`None`: refused).
    pub async fn review(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<Option<(String, String)>, kube::Error> {
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: Some(vec![audience.to_owned()]),
            },
            ..TokenReview::default()
        };
        let answer = api.create(&PostParams::default(), &review).await?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true)
            || !status
                .audiences
                .iter()
                .flatten()
                .any(|a| a.as_str() == audience)
        {
            return Ok(None);
        }
        let user = status.user.unwrap_or_default();
        Ok(user.username.zip(user.uid))
    }
}
