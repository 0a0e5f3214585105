//! Group commit: the writes of concurrent callers share one transaction.
//!
//! A consumer handles up to `CONSUMER_PREFETCH` deliveries at once. If each of them
//! commits on its own, every event costs a transaction: its round trips and, above all,
//! its WAL flush, which on a small machine costs more than all the rest of the handler.
//! A [`GroupCommit`] hands each caller's item to one writer task, which takes everything
//! that queued up while its previous batch was being written and writes it as the next
//! batch, in one transaction.
//!
//! There is no timer and no minimum batch: an item that finds the writer idle is written
//! at once (a batch of one, no added latency); under load the batches grow by themselves
//! to the number of callers waiting. Each caller still gets its own outcome, so the
//! handler's verdict (ack, retry, dead letter) stays per message.
//!
//! A crate could do the queueing, but the ones that exist flush on a time window (latency
//! at low load, which is what this avoids); the queueing here is `recv_many` on a channel.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

/// Writes a batch of items, in one transaction if it can.
pub trait BatchWriter: Send + Sync + 'static {
    /// What one caller asks to have written.
    type Item: Send + 'static;
    /// What that caller learns about its item.
    type Outcome: Send + 'static;

    /// Writes `items` and returns one outcome per item, in the same order. A failure
    /// should be reported in the outcomes of the items it concerns, not for the whole
    /// batch where that can be avoided (e.g. by retrying the items one by one), so that
    /// one bad item does not send its neighbours to the retry queue.
    fn write(
        &self,
        items: Vec<Submitted<Self::Item>>,
    ) -> impl Future<Output = Vec<Self::Outcome>> + Send;
}

/// An item with the span of the caller that submitted it. The writer runs in a task of
/// its own, outside every caller's trace: it records its work on each item under that
/// item's span (`db_span!(..., parent: &submitted.caller, batch_size: n)`), so Jaeger
/// still shows each event's statements in the event's own trace.
#[derive(Debug)]
pub struct Submitted<T> {
    /// What the caller asked to have written.
    pub item: T,
    /// The span that was current when the caller submitted it.
    pub caller: tracing::Span,
}

/// The writer task is gone (it panicked, or gave fewer outcomes than items): the caller
/// should treat its write as failed and retry it.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the batch writer stopped before reporting this item")]
pub struct WriterGone;

/// One caller's item and where its outcome goes.
type Pending<W> = (
    Submitted<<W as BatchWriter>::Item>,
    oneshot::Sender<<W as BatchWriter>::Outcome>,
);

/// The callers' side of a writer task. Cloning shares the task; it stops when the last
/// clone is dropped.
pub struct GroupCommit<W: BatchWriter> {
    queue: mpsc::Sender<Pending<W>>,
}

impl<W: BatchWriter> Clone for GroupCommit<W> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<W: BatchWriter> std::fmt::Debug for GroupCommit<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<W: BatchWriter> GroupCommit<W> {
    /// Starts the writer task; a batch holds at most `max_batch` items. Size it to the
    /// callers' concurrency (the prefetch): more can never be waiting at once.
    pub fn start(writer: W, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let (queue, receiver) = mpsc::channel(max_batch);
        tokio::spawn(write_batches(writer, receiver, max_batch));
        Self { queue }
    }

    /// Has `item` written with whatever else is waiting, and returns its outcome. The
    /// current span goes with it ([`Submitted::caller`]).
    pub async fn submit(&self, item: W::Item) -> Result<W::Outcome, WriterGone> {
        let (reply, outcome) = oneshot::channel();
        let submitted = Submitted {
            item,
            caller: tracing::Span::current(),
        };
        self.queue
            .send((submitted, reply))
            .await
            .map_err(|_| WriterGone)?;
        outcome.await.map_err(|_| WriterGone)
    }
}

/// The writer task: waits for an item, takes every other one already queued (up to
/// `max_batch`), writes them together, answers each caller, and starts over.
async fn write_batches<W: BatchWriter>(
    writer: W,
    mut queue: mpsc::Receiver<Pending<W>>,
    max_batch: usize,
) {
    let mut pending = Vec::with_capacity(max_batch);
    while queue.recv_many(&mut pending, max_batch).await > 0 {
        let (items, replies): (Vec<_>, Vec<_>) = pending.drain(..).unzip();
        let outcomes = writer.write(items).await;
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // A caller that stopped waiting (its delivery was abandoned) needs no answer.
            let _ = reply.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use futures_util::future::join_all;

    use super::*;

    /// Doubles each number, records the batch sizes, and takes a while per batch so that
    /// callers pile up behind it.
    #[derive(Default, Clone)]
    struct Doubler {
        batches: Arc<Mutex<Vec<usize>>>,
        drop_last: bool,
    }

    impl BatchWriter for Doubler {
        type Item = u32;
        type Outcome = u32;

        async fn write(&self, items: Vec<Submitted<u32>>) -> Vec<u32> {
            self.batches.lock().expect("not poisoned").push(items.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut outcomes: Vec<u32> = items.iter().map(|s| s.item * 2).collect();
            if self.drop_last {
                outcomes.pop();
            }
            outcomes
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_batches_and_each_gets_its_own_outcome() {
        let writer = Doubler::default();
        let group = GroupCommit::start(writer.clone(), 16);
        let outcomes = join_all((0..10).map(|n| group.submit(n))).await;
        let outcomes: Vec<u32> = outcomes.into_iter().map(|o| o.expect("written")).collect();
        assert_eq!(outcomes, (0..10).map(|n| n * 2).collect::<Vec<_>>());
        let batches = writer.batches.lock().expect("not poisoned").clone();
        assert_eq!(batches.iter().sum::<usize>(), 10);
        // The first caller may be written alone; everyone else waits for one batch.
        assert!(batches.len() <= 2, "batches: {batches:?}");
    }

    #[tokio::test]
    async fn a_batch_never_exceeds_its_maximum() {
        let writer = Doubler::default();
        let group = GroupCommit::start(writer.clone(), 3);
        join_all((0..10).map(|n| group.submit(n))).await;
        let batches = writer.batches.lock().expect("not poisoned").clone();
        assert!(
            batches.iter().all(|&size| size <= 3),
            "batches: {batches:?}"
        );
        assert_eq!(batches.iter().sum::<usize>(), 10);
    }

    #[tokio::test]
    async fn an_item_the_writer_did_not_report_is_a_failure_not_a_hang() {
        let writer = Doubler {
            drop_last: true,
            ..Doubler::default()
        };
        let group = GroupCommit::start(writer, 16);
        assert!(matches!(group.submit(7).await, Err(WriterGone)));
    }
}
