/** hash-sum: the hash Node-RED's core http request node marks its response headers with (it has no types). */
declare module 'hash-sum' {
  function hashSum(value: unknown): string;
  export = hashSum;
}
