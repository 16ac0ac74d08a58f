// A file's `progress` events (ProgressInfo in index.d.ts) as its bytes arrive, the same for a
// download (fetch.js) and a file read from disk (node/files.js).

/**
 * Reports `file`'s progress to `onProgress`, and `(loaded, total)` to `onTotal`: one event per
 * whole percent (per MiB when `total` is 0, unknown) is plenty; `done` sends the last, at 100.
 */
export function progressReporter(file, total, onProgress, onTotal) {
  let lastReported = -1;
  return {
    advance(loaded) {
      const step = total ? Math.floor((loaded / total) * 100) : Math.floor(loaded / (1 << 20));
      if (step === lastReported || (total && loaded >= total)) return;
      lastReported = step;
      const progress = total ? Math.min(100, (loaded / total) * 100) : 0;
      onProgress?.({ status: 'progress', file, loaded, total, progress });
      onTotal?.(loaded, total);
    },
    done(loaded) {
      onProgress?.({ status: 'progress', file, loaded, total: loaded, progress: 100 });
      onTotal?.(loaded, loaded);
    },
  };
}
