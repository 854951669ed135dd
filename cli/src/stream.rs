//! `pub` and `sub` against the broker: connect (renewing a stale credential once), publish with
//! acknowledgements, subscribe, print deliveries, follow the connection.

use std::collections::VecDeque;
use std::io::{BufRead as _, Read as _, Write as _};
use std::time::Duration;

use smqtt_abe::Policy;
use smqtt_client::{Acknowledgement, ClientConfig, Connection, DeviceStore, Error, Messages, SmqttClient};
use tokio::sync::mpsc;

use crate::{output, Broker, Failure};

/// How many `pub -l` messages may await their acknowledgement at once (the next line waits for the oldest).
const LINES_IN_FLIGHT: usize = 64;
/// Longest line `pub -l` reads (a longer one ends the command with exit 2).
const MAX_LINE: usize = smqtt_client::MAX_PAYLOAD_BYTES;

/// Connects and waits for the CONNACK. A permanent refusal (e.g. a credential of a past epoch) is met with one
/// renewal at the authority when it is at a newer epoch; otherwise it ends the command.
pub(crate) async fn connect(broker: &Broker, config: ClientConfig) -> Result<(SmqttClient, Messages), Failure> {
    let store = DeviceStore::at(&broker.store);
    let identity = store.load()?;
    let (client, messages) = SmqttClient::connect(identity, &config)?;
    match client.wait_connected(broker.wait()).await {
        Ok(()) => Ok((client, messages)),
        Err(refused @ Error::ConnectRefused { permanent: true, .. }) => {
            renew_after(&client, &store, &refused).await?;
            reconnected(&client, broker.wait()).await?;
            Ok((client, messages))
        }
        Err(other) => Err(other.into()),
    }
}

/// After a renewal: waits for the next CONNACK. One more refusal is let pass (an attempt may have set out with
/// the old credential while the renewal ran); a second ends it.
async fn reconnected(client: &SmqttClient, wait: Duration) -> Result<(), Failure> {
    let mut connection = client.watch_connection();
    let mut refusals = 0;
    let outcome = tokio::time::timeout(wait, async {
        loop {
            match connection.changed().await {
                None => return Err(Error::Closed),
                Some(Connection::Up) => return Ok(()),
                Some(Connection::Down(refused @ Error::ConnectRefused { permanent: true, .. })) => {
                    refusals += 1;
                    if refusals > 1 {
                        return Err(refused);
                    }
                }
                Some(_) => {}
            }
        }
    })
    .await;
    match outcome {
        Ok(result) => Ok(result?),
        Err(_) => {
            let message = format!("no answer from the broker within {wait:?} after the renewal");
            Err(Error::Connect { message, source: None }.into())
        }
    }
}

/// After the permanent refusal `refused`: renews when the authority is at a newer epoch than the client, or
/// fails with the refusal and why renewing did not help.
async fn renew_after(client: &SmqttClient, store: &DeviceStore, refused: &Error) -> Result<(), Failure> {
    let probe = store.clone();
    let current = tokio::task::spawn_blocking(move || probe.authority_epoch())
        .await
        .map_err(|e| Failure(format!("{refused} (renewal task failed: {e})"), 1))?;
    let epoch = client.epoch();
    match current {
        Ok(current) if current > epoch => match client.renew(store).await {
            Ok(renewed) => {
                let _ = writeln!(std::io::stderr(), "smqtt: renewed the credential (epoch {epoch} -> {renewed})");
                Ok(())
            }
            Err(e) => Err(Failure(format!("{refused}; renewing failed: {e}"), 1)),
        },
        Ok(_) => Err(Failure(format!("{refused} (the credential is of the authority's current epoch {epoch})"), 1)),
        Err(e) => Err(Failure(format!("{refused} (authority not reachable to renew: {e})"), 1)),
    }
}

/// What `pub` sends.
pub(crate) struct Publication<'a> {
    pub(crate) client: &'a SmqttClient,
    pub(crate) topic: &'a str,
    pub(crate) policy: &'a Policy,
    pub(crate) qos: smqtt_client::QoS,
    pub(crate) retain: bool,
}

impl Publication<'_> {
    async fn send(&self, payload: &[u8]) -> Result<Acknowledgement, Error> {
        self.client.publish_acknowledged(self.topic, self.policy, self.qos, self.retain, payload).await
    }

    /// One message, acknowledged within `wait`.
    pub(crate) async fn one(&self, payload: &[u8], wait: Duration) -> Result<(), Failure> {
        Ok(self.send(payload).await?.wait(wait).await?)
    }

    /// Each stdin line as it arrives, up to [`LINES_IN_FLIGHT`] awaiting acknowledgement; every one acknowledged.
    pub(crate) async fn lines(&self, wait: Duration) -> Result<(), Failure> {
        let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, String>>(LINES_IN_FLIGHT);
        std::thread::spawn(move || read_lines(&tx));
        let mut in_flight: VecDeque<(u64, Acknowledgement)> = VecDeque::new();
        let mut number = 0u64;
        while let Some(line) = rx.recv().await {
            let line = line.map_err(|e| Failure(format!("stdin: {e}"), 2))?;
            number += 1;
            if in_flight.len() >= LINES_IN_FLIGHT {
                if let Some((n, ack)) = in_flight.pop_front() {
                    ack.wait(wait).await.map_err(|e| at_line(n, e))?;
                }
            }
            in_flight.push_back((number, self.send(&line).await.map_err(|e| at_line(number, e))?));
        }
        for (n, ack) in in_flight {
            ack.wait(wait).await.map_err(|e| at_line(n, e))?;
        }
        Ok(())
    }
}

fn at_line(number: u64, error: Error) -> Failure {
    let Failure(message, code) = error.into();
    Failure(format!("line {number}: {message}"), code)
}

/// Reads stdin line by line (bytes, not necessarily UTF-8) into `tx` until EOF or the receiver is gone.
fn read_lines(tx: &mpsc::Sender<Result<Vec<u8>, String>>) {
    let mut stdin = std::io::stdin().lock();
    loop {
        let mut line = Vec::new();
        let read = (&mut stdin).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line);
        let item = match read {
            Ok(0) => return,
            Ok(_) if line.len() > MAX_LINE && line.last() != Some(&b'\n') => {
                Err(format!("a line longer than {MAX_LINE} bytes"))
            }
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                Ok(line)
            }
            Err(e) => Err(e.to_string()),
        };
        let stop = item.is_err();
        if tx.blocking_send(item).is_err() || stop {
            return;
        }
    }
}

/// Subscribes to every filter and waits for the SUBACKs; then says so on stderr.
pub(crate) async fn subscribe(
    client: &SmqttClient,
    broker: &Broker,
    filters: &[String],
    qos: smqtt_client::QoS,
) -> Result<(), Failure> {
    let mut acks = Vec::new();
    for filter in filters {
        acks.push((filter, client.subscribe_acknowledged(filter, qos).await?));
    }
    for (filter, ack) in acks {
        ack.wait(broker.wait()).await.map_err(|e| Failure(format!("{filter}: {e}"), Failure::from(e).1))?;
    }
    let _ = writeln!(std::io::stderr(), "smqtt: subscribed to {}", filters.join(", "));
    Ok(())
}

/// How `sub` prints a message.
#[derive(Clone, Copy)]
pub(crate) enum Format {
    Plain,
    Verbose,
    Json,
}

/// Prints deliveries until `count` or the end; reports connection changes on stderr; a permanent refusal of a
/// reconnect ends it (after one renewal attempt).
pub(crate) async fn print(
    client: &SmqttClient,
    mut messages: Messages,
    broker: &Broker,
    format: Format,
    count: Option<u64>,
) -> Result<(), Failure> {
    let store = DeviceStore::at(&broker.store);
    let mut connection = client.watch_connection();
    let (mut lost, mut just_renewed) = (false, false);
    let mut seen = 0u64;
    loop {
        tokio::select! {
            delivery = messages.next() => {
                let Some(delivery) = delivery else { return Ok(()) };
                if write(&delivery, format).is_err() {
                    return Ok(()); // stdout closed (e.g. piped into head)
                }
                seen += 1;
                if count.is_some_and(|c| seen >= c) {
                    return Ok(());
                }
            }
            change = connection.changed() => match change {
                None => return Ok(()),
                Some(Connection::Up) if lost => {
                    (lost, just_renewed) = (false, false);
                    let _ = writeln!(std::io::stderr(), "smqtt: reconnected");
                }
                // Right after a renewal one attempt may still carry the old credential: let its refusal pass.
                Some(Connection::Down(Error::ConnectRefused { permanent: true, .. })) if just_renewed => {
                    just_renewed = false;
                }
                Some(Connection::Down(refused @ Error::ConnectRefused { permanent: true, .. })) => {
                    renew_after(client, &store, &refused).await?;
                    just_renewed = true;
                }
                Some(Connection::Down(error)) if !lost => {
                    lost = true;
                    let _ = writeln!(std::io::stderr(), "smqtt: {error}; reconnecting");
                }
                Some(_) => {}
            },
        }
    }
}

fn write(delivery: &smqtt_client::Delivery, format: Format) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match (delivery, format) {
        (Ok(m), Format::Plain) => out.write_all(m.payload()).and_then(|()| out.write_all(b"\n"))?,
        (Ok(m), Format::Verbose) => writeln!(out, "{}", output::verbose_line(m))?,
        (Ok(m), Format::Json) => writeln!(out, "{}", output::json_line(m))?,
        (Err(e), Format::Json) => writeln!(out, "{}", output::json_refusal(e))?,
        (Err(e), _) => {
            let _ = writeln!(std::io::stderr(), "smqtt: refused: {}", output::escaped(e.to_string().as_bytes()));
        }
    }
    out.flush()
}

/// Disconnects and lets the DISCONNECT go out (up to a second).
pub(crate) async fn close(client: &SmqttClient) {
    let mut connection = client.watch_connection();
    client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async { while connection.changed().await.is_some() {} }).await;
}
