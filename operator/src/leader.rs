//! Leader election on a coordination.k8s.io Lease, through kube-lease-manager: with several
//! replicas only the Lease's holder reconciles, and a standby takes over when the holder stops
//! renewing it (at once when the holder releases it on shutdown).

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Which Lease, held by whom, for how long.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// Its namespace: the operator's own.
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// Seconds a holder keeps the Lease without renewing it.
    pub duration: u64,
    /// The holder renews this many seconds before the Lease would expire.
    pub grace: u64,
}

/// Errors of the election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read or written.
    #[error(
        "leader election on Lease {namespace}/{name}: {source} (the Helm chart creates the Lease; \
         without the chart, create it or run with --leader-elect=false)"
    )]
    Lease {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// What failed.
        source: LeaseManagerError,
    },
    /// The election task ended before this replica became the leader.
    #[error("leader election on Lease {0} stopped")]
    Stopped(String),
}

/// Holding the Lease, renewed in the background.
pub struct Leadership {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

/// Waits until this replica holds the Lease. The Lease must exist (the chart creates it), so
/// the operator needs no right to create Leases, only to read and patch this one.
pub async fn acquire(client: Client, cfg: &LeaseConfig) -> Result<Leadership, LeaderError> {
    let lease_err = |source| LeaderError::Lease {
        namespace: cfg.namespace.clone(),
        name: cfg.name.clone(),
        source,
    };
    // Applied manifests may create the Deployment before the Lease: wait for it, saying so.
    let mut waited = 0u32;
    let manager = loop {
        let built = LeaseManagerBuilder::new(client.clone(), &cfg.name)
            .with_namespace(&cfg.namespace)
            .with_identity(&cfg.identity)
            .with_duration(cfg.duration)
            .with_grace(cfg.grace)
            .with_create_mode(LeaseCreateMode::UseExistent)
            .build()
            .await;
        match built {
            Ok(m) => break m,
            Err(LeaseManagerError::NonexistentLease(_)) => {
                if waited.is_multiple_of(15) {
                    warn!(
                        lease = %cfg.name, namespace = %cfg.namespace,
                        "the leader election Lease does not exist (yet); waiting for it \
                         (the Helm chart creates it; or run with --leader-elect=false)"
                    );
                }
                waited += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(lease_err(e)),
        }
    };
    let (mut state, task) = manager.watch().await;
    info!(lease = %cfg.name, identity = %cfg.identity, "waiting to become the leader");
    while !*state.borrow_and_update() {
        if state.changed().await.is_err() {
            return Err(match task.await {
                Ok(Err(e)) => lease_err(e),
                _ => LeaderError::Stopped(cfg.name.clone()),
            });
        }
    }
    info!(lease = %cfg.name, identity = %cfg.identity, "became the leader");
    Ok(Leadership { state, task })
}

impl Leadership {
    /// Resolves when this replica no longer holds the Lease.
    pub async fn lost(&mut self) {
        loop {
            if self.state.changed().await.is_err() || !*self.state.borrow_and_update() {
                return;
            }
        }
    }

    /// Gives the Lease up so that a standby takes over without waiting for it to expire.
    pub async fn release(self) {
        drop(self.state);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => info!("released the lease"),
            Ok(Ok(Err(e))) => warn!(error = %e, "releasing the lease failed; it will expire"),
            Ok(Err(e)) => warn!(error = %e, "the lease task failed"),
            Err(_) => warn!("releasing the lease timed out; it will expire"),
        }
    }
}
