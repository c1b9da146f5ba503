// Tracing must start before Express and pg load, so the rest arrives by dynamic import.
import { startTracing } from '@vextrus/shared/tracing';

await startTracing('auth');
const { runService } = await import('@vextrus/shared');
const { authService } = await import('./service.js');
await runService(authService);
