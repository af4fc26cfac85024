//! `swarmkeep image ls|pull|load|rm`: the images of the node the CLI talks
//! to, as `docker images|pull|load|rmi` show them.

use std::io::Read;

use swarmkeep_api::containers::containers_client::ContainersClient;
use swarmkeep_api::containers::{ListImagesRequest, LoadChunk, PullImageRequest, RemoveImageRequest};
use swarmkeep_api::timefmt::ago;
use tonic::transport::Channel;

use super::Output;
use crate::client::CliError;

pub type Images = ContainersClient<Channel>;

const LS_FORMAT: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// go-units' `HumanSizeWithPrecision(size, 3)`: decimal units.
fn human_size(bytes: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1000.0 && i < units.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    let digits = if size >= 100.0 {
        0
    } else if size >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{size:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", units[i])
}

pub async fn ls(client: &mut Images, quiet: bool, format: Option<&str>) -> Output {
    let images = match client.list_images(ListImagesRequest {}).await {
        Ok(r) => r.into_inner().images,
        Err(s) => return CliError::from(s).into(),
    };
    let now = time::OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    for i in &images {
        let id = i.id.trim_start_matches("sha256:");
        let short = &id[..id.len().min(12)];
        let created = prost_types::Timestamp {
            seconds: i.created,
            nanos: 0,
        };
        let tags: Vec<(String, String)> = if i.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.repo_tags
                .iter()
                .map(|t| match t.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')) {
                    Some((r, tag)) => (r.to_string(), tag.to_string()),
                    None => (t.clone(), "<none>".into()),
                })
                .collect()
        };
        for (repo, tag) in tags {
            rows.push(serde_json::json!({
                "Repository": repo,
                "Tag": tag,
                "ID": short,
                "CreatedSince": if i.created == 0 { "N/A".to_string() } else { ago(Some(&created), now) },
                "Size": human_size(i.size),
            }));
        }
    }
    let headers = serde_json::json!({
        "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED", "Size": "SIZE",
    });
    match crate::format::render_list(super::list_format(quiet, format, LS_FORMAT), &headers, &rows) {
        Ok(s) => Output::ok(s),
        Err(e) => e.into(),
    }
}

pub async fn pull(client: &mut Images, reference: &str) -> Output {
    match client
        .pull_image(PullImageRequest {
            reference: reference.to_string(),
            // The login `docker login` stored for its registry, as `docker pull` sends it.
            // (A login only a credential helper holds: pulled anonymously, said so.)
            registry_auth: super::registry_auth::for_image(reference).unwrap_or_else(|e| {
                eprintln!("{e}; pulling anonymously");
                Vec::new()
            }),
        })
        .await
    {
        Ok(r) => Output::ok(r.into_inner().lines.iter().map(|l| format!("{l}\n")).collect()),
        Err(s) => CliError::from(s).into(),
    }
}

/// `image load [-i FILE]` (standard input without `-i`), sent in chunks.
pub async fn load(client: &mut Images, input: Option<&std::path::Path>) -> Output {
    let mut reader: Box<dyn Read + Send> = match input {
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => Box::new(f),
            Err(e) => return CliError(format!("open {}: {e}", p.display())).into(),
        },
        None => Box::new(std::io::stdin()),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<LoadChunk>(4);
    let reading = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    if tx
                        .blocking_send(LoadChunk {
                            data: buf[..n].to_vec(),
                        })
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Err(e) => return Err(CliError(format!("reading the archive: {e}"))),
            }
        }
    });
    let answer = client.load_image(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
    if let Ok(Err(e)) = reading.await {
        return e.into();
    }
    match answer {
        Ok(r) => Output::ok(r.into_inner().lines.iter().map(|l| format!("{l}\n")).collect()),
        Err(s) => CliError::from(s).into(),
    }
}

pub async fn rm(client: &mut Images, names: &[String]) -> Output {
    let mut out = Output::default();
    for name in names {
        match client.remove_image(RemoveImageRequest { name: name.clone() }).await {
            Ok(r) => {
                for l in r.into_inner().lines {
                    out.stdout.push_str(&l);
                    out.stdout.push('\n');
                }
            }
            Err(s) => out.error = Some(CliError::from(s)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_as_go_units() {
        assert_eq!(super::human_size(1_234_567), "1.23MB");
        assert_eq!(super::human_size(999), "999B");
        assert_eq!(super::human_size(12_300_000), "12.3MB");
    }
}
