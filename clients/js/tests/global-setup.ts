import type { TestProject } from 'vitest/node';
import { ensureTemplate } from './service.js';

export default function setup(project: TestProject): void {
  project.provide('template', ensureTemplate());
}

declare module 'vitest' {
  export interface ProvidedContext {
    template: string;
  }
}
