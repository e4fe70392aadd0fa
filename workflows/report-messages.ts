/**
 * The bounded reads (issue 13): a wave child's hosts while it runs, and the deployment's summary and
 * pages of hosts. Definitions only, for the workflows and the service (workflows/wave-report.ts).
 */
import { defineQuery } from '@temporalio/workflow';
import type { HostPage, HostPageQuery, StatusSummary, SummaryProgressPage } from '../src/domain/host-pages';
import type { HostUpdate } from './common';

/** The running child's hosts, each as merged from its records so far (the hosts it has reached). */
export interface WaveHostsView {
  hosts: HostUpdate[];
}
export const waveHostsQuery = defineQuery<WaveHostsView>('waveHosts');
/** The bounded summary (counts per state and wave, the latest audit entry; no host lists). */
export const summaryQuery = defineQuery<StatusSummary>('summary');
/** One page of the deployment's hosts (deployment order; optionally one wave's or one state's). */
export const hostsPageQuery = defineQuery<HostPage, [HostPageQuery]>('hostsPage');
/**
 * The live feed at any fleet size (e-dash): the transitions after a cursor and the bounded summary as
 * of the latest one (progressSince answers the whole status). A query: no history, no patch.
 */
export const progressSummarySinceQuery = defineQuery<SummaryProgressPage, [number | null]>('progressSummarySince');
