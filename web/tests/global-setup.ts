// The migrated template database for the console's tests and scripts/bench console.
import type { TestProject } from 'vitest/node';
import { ensureTemplate } from '../../clients/js/tests/service';

export default function setup(project: TestProject): void {
  project.provide('template', ensureTemplate());
}

declare module 'vitest' {
  export interface ProvidedContext {
    template: string;
  }
}
