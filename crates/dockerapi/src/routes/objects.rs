//! `/secrets` and `/configs`: list (filters), create, inspect, update
//! (labels only), remove. A secret's data is accepted on create (and, to be
//! compared, on update) and never shown.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::{
    Annotations, ConfigSpec, CreateConfigRequest, CreateSecretRequest, GetConfigRequest, GetSecretRequest,
    ListConfigsRequest, ListFilters, ListSecretsRequest, RemoveConfigRequest, RemoveSecretRequest, SecretSpec,
    UpdateConfigRequest, UpdateSecretRequest, Version,
};
use swarmkeep_api::engine;
use zeroize::Zeroizing;

use super::{Api, call, json_body, version_param};
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};
use crate::filters::Filters;

/// A `Data` field: base64 decoded straight into the buffer that goes to the
/// control service; nothing of it is kept elsewhere, and a decoding error
/// does not quote it.
#[derive(Default)]
struct Payload(Vec<u8>);

impl Drop for Payload {
    /// A request refused after its data was decoded leaves nothing behind.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("base64 data")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Payload, E> {
                let mut buf = Zeroizing::new(vec![0u8; base64::decoded_len_estimate(v.len())]);
                let n = STANDARD
                    .decode_slice(v.as_bytes(), &mut buf[..])
                    .map_err(|_| E::custom("Data is not valid base64"))?;
                buf.truncate(n);
                Ok(Payload(std::mem::take(&mut *buf)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Payload, E> {
                Ok(Payload::default())
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Spec {
    name: String,
    labels: Option<HashMap<String, String>>,
    data: Payload,
    driver: Option<serde_json::Value>,
    templating: Option<serde_json::Value>,
}

impl Spec {
    /// Secret drivers and templating are not built; refused rather than ignored.
    fn check_supported(&self, kind: &str) -> ApiResult<()> {
        for (field, what) in [("Driver", &self.driver), ("Templating", &self.templating)] {
            if what.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(ApiError::bad_request(format!(
                    "swarmkeep does not support {kind} {} ({field}) yet",
                    field.to_ascii_lowercase()
                )));
            }
        }
        Ok(())
    }

    fn annotations(&mut self) -> Option<Annotations> {
        Some(Annotations {
            name: std::mem::take(&mut self.name),
            labels: self.labels.take().unwrap_or_default(),
        })
    }
}

fn list_filters(req: &Req) -> ApiResult<Option<ListFilters>> {
    let filters = Filters::parse(req.query("filters"))?;
    filters.allow(&["id", "label", "name", "names"])?;
    let mut lf = filters.list_filters();
    if !filters.get("names").is_empty() {
        lf.get_or_insert_with(ListFilters::default).names = filters.get("names").to_vec();
    }
    Ok(lf)
}

fn json_list<T: serde::Serialize>(items: Vec<T>) -> Reply {
    Reply::Json(200, serde_json::to_value(items).unwrap_or_default())
}

impl<C: Control> Api<C> {
    pub async fn secrets_list(&self, req: &Req) -> ApiResult<Reply> {
        let filters = list_filters(req)?;
        let secrets = call!(self, list_secrets, ListSecretsRequest { filters })?.secrets;
        Ok(json_list(secrets.iter().map(engine::Secret::from).collect()))
    }

    pub async fn secret_create(&self, req: &Req) -> ApiResult<Reply> {
        let mut spec: Spec = json_body(req)?;
        spec.check_supported("secret")?;
        let secret = call!(
            self,
            create_secret,
            CreateSecretRequest {
                spec: Some(SecretSpec {
                    annotations: spec.annotations(),
                    data: std::mem::take(&mut spec.data.0),
                }),
            }
        )?
        .secret
        .unwrap_or_default();
        Ok(Reply::Json(201, serde_json::json!({ "ID": secret.id })))
    }

    pub async fn secret_inspect(&self, id: &str) -> ApiResult<Reply> {
        let secret = call!(self, get_secret, GetSecretRequest { id: id.into() })?
            .secret
            .unwrap_or_default();
        Ok(Reply::Json(
            200,
            serde_json::to_value(engine::Secret::from(&secret)).unwrap_or_default(),
        ))
    }

    pub async fn secret_update(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        let version = version_param(req, "secret")?;
        let mut spec: Spec = json_body(req)?;
        spec.check_supported("secret")?;
        call!(
            self,
            update_secret,
            UpdateSecretRequest {
                id: id.into(),
                version: Some(Version { index: version }),
                spec: Some(SecretSpec {
                    annotations: spec.annotations(),
                    data: std::mem::take(&mut spec.data.0),
                }),
            }
        )?;
        Ok(Reply::Empty(200))
    }

    pub async fn secret_remove(&self, id: &str) -> ApiResult<Reply> {
        call!(self, remove_secret, RemoveSecretRequest { id: id.into() })?;
        Ok(Reply::Empty(204))
    }

    pub async fn configs_list(&self, req: &Req) -> ApiResult<Reply> {
        let filters = list_filters(req)?;
        let configs = call!(self, list_configs, ListConfigsRequest { filters })?.configs;
        Ok(json_list(configs.iter().map(engine::Config::from).collect()))
    }

    pub async fn config_create(&self, req: &Req) -> ApiResult<Reply> {
        let mut spec: Spec = json_body(req)?;
        spec.check_supported("config")?;
        let config = call!(
            self,
            create_config,
            CreateConfigRequest {
                spec: Some(ConfigSpec {
                    annotations: spec.annotations(),
                    data: std::mem::take(&mut spec.data.0),
                }),
            }
        )?
        .config
        .unwrap_or_default();
        Ok(Reply::Json(201, serde_json::json!({ "ID": config.id })))
    }

    pub async fn config_inspect(&self, id: &str) -> ApiResult<Reply> {
        let config = call!(self, get_config, GetConfigRequest { id: id.into() })?
            .config
            .unwrap_or_default();
        Ok(Reply::Json(
            200,
            serde_json::to_value(engine::Config::from(&config)).unwrap_or_default(),
        ))
    }

    pub async fn config_update(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        let version = version_param(req, "config")?;
        let mut spec: Spec = json_body(req)?;
        spec.check_supported("config")?;
        call!(
            self,
            update_config,
            UpdateConfigRequest {
                id: id.into(),
                version: Some(Version { index: version }),
                spec: Some(ConfigSpec {
                    annotations: spec.annotations(),
                    data: std::mem::take(&mut spec.data.0),
                }),
            }
        )?;
        Ok(Reply::Empty(200))
    }

    pub async fn config_remove(&self, id: &str) -> ApiResult<Reply> {
        call!(self, remove_config, RemoveConfigRequest { id: id.into() })?;
        Ok(Reply::Empty(204))
    }
}
