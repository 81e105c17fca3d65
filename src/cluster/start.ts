/**
 * WORKERS > 1: this process is either the primary (it supervises, writes the logs, sums the
 * scrapes) or one of its workers (it serves). Loaded only then, so WORKERS = 1 never loads
 * node:cluster.
 */
import cluster from 'node:cluster';
import type { Config } from '../config.js';
import { runPrimary } from './primary.js';
import { workerSide, type WorkerSide } from './worker.js';

export function startCluster(config: Config, workers: number, version: string, serveWorker: (side: WorkerSide) => void): void {
  if (cluster.isPrimary) runPrimary(config, workers, version);
  else serveWorker(workerSide(cluster.worker!.id));
}
