declare module 'virtual:rule-dts' {
  export interface Member {
    name: string;
    type: string;
    doc: string;
    children?: Member[];
  }
  const dts: { interfaces: Record<string, Member[]>; globals: Member[] };
  export default dts;
}
