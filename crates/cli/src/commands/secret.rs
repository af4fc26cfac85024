//! `swarmkeep secret create|ls|inspect|rm`.

use swarmkeep_api::control::{self, CreateSecretRequest, GetSecretRequest, ListSecretsRequest, RemoveSecretRequest};
use swarmkeep_api::engine;

use super::objects::{Common, list_filters, ls_output, read_payload};
use super::{Output, fetch_each, inspect_output, parse_labels, remove_each};
use crate::client::{CliError, Client};

/// Read at most twice the server's limit, as the docker CLI does.
const READ_LIMIT: usize = 2 * 500 * 1024;

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}";

fn common(s: &control::Secret) -> Common<'_> {
    Common {
        id: &s.id,
        meta: s.meta.as_ref(),
        annotations: s.spec.as_ref().and_then(|sp| sp.annotations.as_ref()),
    }
}

pub async fn create(client: &mut Client, name: &str, file: Option<&str>, labels: &[String]) -> Output {
    let data = match read_payload("secret", file, READ_LIMIT) {
        Ok(d) => d,
        Err(e) => return e.into(),
    };
    let spec = control::SecretSpec {
        annotations: Some(control::Annotations {
            name: name.to_string(),
            labels: parse_labels(labels),
        }),
        data: data.expose().to_vec(),
    };
    drop(data);
    match client.create_secret(CreateSecretRequest { spec: Some(spec) }).await {
        Ok(resp) => Output::ok(format!(
            "{}\n",
            resp.into_inner().secret.map(|s| s.id).unwrap_or_default()
        )),
        Err(status) => CliError::from(status).into(),
    }
}

pub async fn ls(client: &mut Client, quiet: bool, filters: &[String], format: Option<&str>) -> Output {
    let filters = match list_filters(filters) {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    let secrets = match client.list_secrets(ListSecretsRequest { filters: Some(filters) }).await {
        Ok(r) => r.into_inner().secrets,
        Err(status) => return CliError::from(status).into(),
    };
    let items = secrets.iter().map(common).collect();
    ls_output(items, quiet, format, DEFAULT_FORMAT, Some(""))
}

fn pretty(s: &control::Secret) -> String {
    let c = common(s);
    format!(
        "ID:              {}\nName:              {}{}\nDriver:            \nCreated at:        {}\nUpdated at:        {}",
        c.id,
        c.name(),
        c.label_lines(),
        c.created(),
        c.updated()
    )
}

pub async fn inspect(client: &mut Client, names: &[String], is_pretty: bool, format: Option<&str>) -> Output {
    let (found, errors) = fetch_each(names, async |id| {
        Ok(client.get_secret(GetSecretRequest { id }).await?.into_inner().secret)
    })
    .await;
    let texts = is_pretty.then(|| found.iter().map(pretty).collect());
    let json = found
        .iter()
        .map(|o| serde_json::to_value(engine::Secret::from(o)).unwrap_or_default())
        .collect();
    inspect_output(json, texts, format, errors)
}

pub async fn rm(client: &mut Client, names: &[String]) -> Output {
    remove_each(names, async |id| {
        client.remove_secret(RemoveSecretRequest { id }).await.map(drop)
    })
    .await
}
