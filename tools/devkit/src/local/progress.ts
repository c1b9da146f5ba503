/** Prints one line per start-up step with its duration, so a long start shows where it is. */
export async function step<T>(title: string, run: () => Promise<T>): Promise<T> {
  const started = Date.now();
  process.stdout.write(`  ${title} ... `);
  try {
    const result = await run();
    process.stdout.write(`ok (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
    return result;
  } catch (err) {
    process.stdout.write('failed\n');
    throw err;
  }
}
