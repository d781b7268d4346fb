#!/bin/sh
# Regenerates the expected tshark field dumps (*.tshark.tsv) next to every
# capture in testdata/ot/<protocol>/. Run once by hand after adding a
# capture; the Go tests read the committed files and never need tshark.
#   sh testdata/ot/gen_golden.sh
set -eu
cd "$(dirname "$0")"

fields() {
	case "$1" in
	modbus) echo "mbtcp.trans_id mbtcp.unit_id modbus.func_code modbus.exception_code modbus.reference_num modbus.word_cnt modbus.bit_cnt" ;;
	dnp3) echo "dnp3.src dnp3.dst dnp3.al.func dnp3.al.obj" ;;
	s7comm) echo "s7comm.header.rosctr s7comm.header.pduref s7comm.param.func s7comm.param.userdata.funcgroup s7comm.param.userdata.subfunc s7comm.header.errcls s7comm.param.pistart.servicename" ;;
	enip) echo "enip.command enip.session cip.sc cip.genstat" ;;
	iec104) echo "iec60870_104.type iec60870_104.utype iec60870_asdu.typeid iec60870_asdu.causetx iec60870_asdu.addr iec60870_asdu.numix iec60870_asdu.ioa" ;;
	bacnet) echo "bvlc.function bacapp.confirmed_service bacapp.unconfirmed_service bacapp.invoke_id" ;;
	mqtt) echo "mqtt.msgtype mqtt.clientid mqtt.topic mqtt.msgid" ;;
	opcua) echo "opcua.transport.type opcua.transport.chunk opcua.servicenodeid.numeric opcua.security.rqid opcua.security.spu opcua.transport.endpoint" ;;
	esac
}

filter() {
	case "$1" in
	modbus) echo mbtcp ;;
	dnp3) echo dnp3 ;;
	s7comm) echo s7comm ;;
	enip) echo enip ;;
	iec104) echo iec60870_104 ;;
	bacnet) echo bvlc ;;
	mqtt) echo mqtt ;;
	opcua) echo opcua ;;
	esac
}

# Captures on non-standard ports need a decode-as rule.
decode_as() {
	case "$1" in
	opcua/opc-ua-ap-method-wireshark-freeze.pcap) echo "-d tcp.port==12001,opcua" ;;
	*) echo "" ;;
	esac
}

for f in */*.pcap */*.pcapng; do
	proto=${f%%/*}
	out=$f.tshark.tsv
	set -- $(for x in $(fields "$proto"); do printf -- '-e %s ' "$x"; done)
	{
		printf '# %s\n' "$(tshark -v 2>/dev/null | head -1)"
		printf '# tshark -r %s %s -Y %s -T fields -E occurrence=a -E separator=/t -e frame.number %s\n' \
			"$f" "$(decode_as "$f")" "$(filter "$proto")" "$*"
		printf 'frame.number'
		for x in $(fields "$proto"); do printf '\t%s' "$x"; done
		printf '\n'
		# shellcheck disable=SC2046
		tshark -r "$f" $(decode_as "$f") -Y "$(filter "$proto")" -T fields -E occurrence=a -E separator=/t \
			-e frame.number "$@" 2>/dev/null
	} >"$out"
	echo "$out: $(($(wc -l <"$out") - 3)) frames"
done
