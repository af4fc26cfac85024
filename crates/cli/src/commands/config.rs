//! `swarmkeep config create|ls|inspect|rm`. Configs are not secret: inspect shows
//! their data (base64 in JSON, as text with `--pretty`).

use swarmkeep_api::control::{self, CreateConfigRequest, GetConfigRequest, ListConfigsRequest, RemoveConfigRequest};
use swarmkeep_api::engine;

use super::objects::{Common, list_filters, ls_output, read_payload};
use super::{Output, fetch_each, inspect_output, parse_labels, remove_each};
use crate::client::{CliError, Client};

/// Read at most twice the server's limit, as the docker CLI does.
const READ_LIMIT: usize = 2 * 1000 * 1024;

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}";

fn common(s: &control::Config) -> Common<'_> {
    Common {
        id: &s.id,
        meta: s.meta.as_ref(),
        annotations: s.spec.as_ref().and_then(|sp| sp.annotations.as_ref()),
    }
}

pub async fn create(client: &mut Client, name: &str, file: Option<&str>, labels: &[String]) -> Output {
    let data = match read_payload("config", file, READ_LIMIT) {
        Ok(d) => d,
        Err(e) => return e.into(),
    };
    let spec = control::ConfigSpec {
        annotations: Some(control::Annotations {
            name: name.to_string(),
            labels: parse_labels(labels),
        }),
        data: data.expose().to_vec(),
    };
    match client.create_config(CreateConfigRequest { spec: Some(spec) }).await {
        Ok(resp) => Output::ok(format!(
            "{}\n",
            resp.into_inner().config.map(|s| s.id).unwrap_or_default()
        )),
        Err(status) => CliError::from(status).into(),
    }
}

pub async fn ls(client: &mut Client, quiet: bool, filters: &[String], format: Option<&str>) -> Output {
    let filters = match list_filters(filters) {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    let configs = match client.list_configs(ListConfigsRequest { filters: Some(filters) }).await {
        Ok(r) => r.into_inner().configs,
        Err(status) => return CliError::from(status).into(),
    };
    let items = configs.iter().map(common).collect();
    ls_output(items, quiet, format, DEFAULT_FORMAT, None)
}

fn pretty(s: &control::Config) -> String {
    let c = common(s);
    let data = s
        .spec
        .as_ref()
        .map(|sp| String::from_utf8_lossy(&sp.data).into_owned())
        .unwrap_or_default();
    format!(
        "ID:\t\t\t{}\nName:\t\t\t{}{}\nCreated at:            \t{}\nUpdated at:            \t{}\nData:\n{}",
        c.id,
        c.name(),
        c.label_lines(),
        c.created(),
        c.updated(),
        data
    )
}

pub async fn inspect(client: &mut Client, names: &[String], is_pretty: bool, format: Option<&str>) -> Output {
    let (found, errors) = fetch_each(names, async |id| {
        Ok(client.get_config(GetConfigRequest { id }).await?.into_inner().config)
    })
    .await;
    let texts = is_pretty.then(|| found.iter().map(pretty).collect());
    let json = found
        .iter()
        .map(|o| serde_json::to_value(engine::Config::from(o)).unwrap_or_default())
        .collect();
    inspect_output(json, texts, format, errors)
}

pub async fn rm(client: &mut Client, names: &[String]) -> Output {
    remove_each(names, async |id| {
        client.remove_config(RemoveConfigRequest { id }).await.map(drop)
    })
    .await
}
