//! What a task runs, from its service's container spec and its image's
//! config, with Docker's precedence: a service command replaces the image's
//! entrypoint (and drops its Cmd); service args replace the image's Cmd; the
//! service's env is laid over the image's, by name; the service's working
//! directory and user win when set.

use swarmkeep_api::control;
use swarmkeep_image::ImageConfig;

use crate::executor::TaskRun;

pub(crate) fn apply(run: &mut TaskRun, spec: &control::TaskSpec, image: &ImageConfig) {
    run.argv = if !spec.command.is_empty() {
        spec.command.iter().chain(&spec.args).cloned().collect()
    } else {
        let cmd = if spec.args.is_empty() { &image.cmd } else { &spec.args };
        image.entrypoint.iter().chain(cmd).cloned().collect()
    };
    let mut env: Vec<String> = image.env.clone();
    for e in &spec.env {
        let name = e.split('=').next().unwrap_or(e);
        env.retain(|old| old.split('=').next() != Some(name));
        env.push(e.clone());
    }
    run.env = env;
    run.workdir = if spec.workdir.is_empty() {
        image.working_dir.clone()
    } else {
        spec.workdir.clone()
    };
    run.user = if spec.user.is_empty() {
        image.user.clone()
    } else {
        spec.user.clone()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> TaskRun {
        TaskRun {
            task_id: "t".into(),
            argv: Vec::new(),
            env: Vec::new(),
            workdir: String::new(),
            user: String::new(),
            layers: Vec::new(),
            secrets_dir: None,
            files: Vec::new(),
            binds: Vec::new(),
            volumes: Vec::new(),
            tmpfs: Vec::new(),
            container_id: String::new(),
            hostname: String::new(),
            network: crate::network::NetworkMode::Bridge,
            overlays: Vec::new(),
            host_ports: Vec::new(),
            read_only: false,
            tty: false,
            limits: Default::default(),
            sandbox: Default::default(),
        }
    }

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into(), "--port=80".into()],
            env: vec!["PATH=/bin".into(), "MODE=image".into()],
            working_dir: "/app".into(),
            user: "1000".into(),
            stop_signal: String::new(),
            healthcheck: None,
        }
    }

    fn spec(command: &[&str], args: &[&str]) -> control::TaskSpec {
        control::TaskSpec {
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn dockers_precedence_between_service_and_image() {
        let cases: [(&[&str], &[&str], &[&str]); 4] = [
            (&[], &[], &["/entry", "serve", "--port=80"]),
            (&[], &["debug"], &["/entry", "debug"]),
            (&["sh"], &[], &["sh"]),
            (&["sh"], &["-c", "true"], &["sh", "-c", "true"]),
        ];
        for (command, args, want) in cases {
            let mut r = run();
            apply(&mut r, &spec(command, args), &image());
            assert_eq!(r.argv, want, "command {command:?} args {args:?}");
        }
    }

    #[test]
    fn service_env_workdir_and_user_win_over_the_images() {
        let mut r = run();
        let mut s = spec(&[], &[]);
        apply(&mut r, &s, &image());
        assert_eq!((r.workdir.as_str(), r.user.as_str()), ("/app", "1000"));
        s.env = vec!["MODE=service".into(), "EXTRA=1".into()];
        s.workdir = "/srv".into();
        s.user = "0".into();
        apply(&mut r, &s, &image());
        assert_eq!(r.env, ["PATH=/bin", "MODE=service", "EXTRA=1"]);
        assert_eq!((r.workdir.as_str(), r.user.as_str()), ("/srv", "0"));
    }
}
